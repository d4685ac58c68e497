/** The answers about disaster recovery (replication, readiness, drills, failover) and the figures. */
import { z } from "zod";
import {
  drillPhases,
  drillStates,
  forkCauses,
  forkResolutions,
  forkStates,
  readinessFailureKinds,
  readinessUserStates,
} from "../../domain/dr-model.ts";
import { metricNames } from "../../domain/metric-catalogue.ts";

import { pool } from "./entities.ts";
import { bytes, count, timestamp } from "./fields.ts";

const drFlags = {
  tenantId: z.string(),
  failedOver: z.boolean().optional(),
  failedOverAt: timestamp.optional(),
  failingBack: z.boolean().optional(),
  failedBackAt: timestamp.optional(),
  configAppliedAt: timestamp.optional(),
  epoch: count
    .optional()
    .describe("the tenant's DR epoch here: raised by each failover and each completed failback"),
  fenced: z
    .boolean()
    .optional()
    .describe("this region refuses the tenant's logons: the DR region serves it (set by its failover)"),
  deletedPools: z
    .array(z.string())
    .optional()
    .describe("pools deleted in the primary region (tombstones: never brought back by replication)"),
  deletedVersions: z
    .array(z.string())
    .optional()
    .describe('image versions ("<imageId>@<n>") deleted in the primary region (tombstones)'),
};
export const drState = z
  .strictObject({
    ...drFlags,
    standbyPools: z.array(pool).optional(),
    standbyRevision: z.number().int().optional(),
    shippedImages: z.array(z.string()).optional(),
  })
  .meta({ id: "DrState" });
export const failoverResult = drState
  .extend({
    primaryFenced: z
      .boolean()
      .describe(
        "whether the primary region was fenced before the answer (false: it was out of reach and is fenced when back)",
      ),
  })
  .meta({ id: "FailoverResult" });
export const userDataFork = z
  .strictObject({
    tenantId: z.string(),
    forkId: z.string(),
    userId: z.string(),
    cause: z
      .enum(forkCauses)
      .describe(
        "committed-while-fenced: a session ended in the primary after failover; superseded-by-failover: versions the other region's later history replaced; committed-on-replaced-version: a session whose version that history replaced while it was open",
      ),
    state: z.enum(forkStates),
    region: z.string().describe("the region whose store holds the fork's disk"),
    epoch: count,
    baseVersion: count.describe("the last version the fork shares with the user's history"),
    versions: z.array(count).optional(),
    sessionId: z.string().optional(),
    sha256: z.string(),
    sizeBytes: bytes,
    createdAt: timestamp,
    keep: z.enum(forkResolutions).optional(),
    resolvedAt: timestamp.optional(),
    resolvedVersion: count.optional().describe("with keep=fork: the version holding the fork's content"),
  })
  .meta({ id: "UserDataFork" });
export const replicationStatus = z
  .strictObject({
    region: z.string(),
    peer: z.string().optional(),
    pendingChanges: count,
    oldestPendingAgeMs: z.number(),
    bytesShipped: bytes,
    rpoP50Ms: z.number().optional(),
    rpoP99Ms: z.number().optional(),
    users: z.array(
      z.strictObject({
        userId: z.string(),
        version: count,
        replicatedVersion: count,
        lagVersions: z.number().int(),
        lastChangeAt: timestamp,
        oldestUnreplicatedAt: timestamp.optional(),
      }),
    ),
    pending: z.array(
      z.strictObject({
        userId: z.string(),
        version: count,
        committedAt: timestamp,
        shippedAt: timestamp.optional(),
      }),
    ),
    forks: z
      .array(userDataFork)
      .describe("users' data kept outside their history at a failover, held in this region"),
    dr: z.strictObject({
      ...drFlags,
      standbyPools: z.array(z.string()).describe("ids of the peer's pools held here as standbys"),
      imagesShipped: count,
    }),
  })
  .meta({ id: "ReplicationStatus" });

export const readinessReport = z
  .strictObject({
    tenantId: z.string(),
    checkId: z
      .string()
      .describe("the schedule period the check is for (its start): the same for a repeated run"),
    sourceRegion: z.string().describe("the region whose data and configuration were checked"),
    checkedRegion: z.string().describe("the region that checked its copies"),
    sampledAt: timestamp,
    checkedAt: timestamp,
    ok: z.boolean(),
    rpoMs: z
      .number()
      .min(0)
      .describe("the source's RPO when it sampled: its oldest change not yet verified in DR"),
    usersTotal: count.describe("users with data in the source (the sample rotates through them)"),
    users: z.array(
      z.strictObject({
        userId: z.string(),
        version: count.describe("the source's version"),
        drVersion: count.describe("the version the checking region holds"),
        state: z.enum(readinessUserStates),
        contentVerified: z
          .boolean()
          .describe("the disk's content checksum was recomputed, not only its record read"),
        reason: z.string().optional(),
      }),
    ),
    imageVersionsChecked: count,
    poolsChecked: count,
    failures: z.array(
      z.strictObject({
        kind: z.enum(readinessFailureKinds),
        id: z.string().describe('a user id, "<imageId>@<n>" or a pool id'),
        reason: z.string(),
      }),
    ),
  })
  .meta({ id: "ReadinessReport" });
export const readinessStatus = z
  .strictObject({
    region: z.string(),
    peer: z.string().optional(),
    periodMs: z.number().int().positive().describe("the readiness schedule's period"),
    sampleUsers: count.describe("users whose DR copy each check verifies"),
    currentRpoMs: z
      .number()
      .min(0)
      .describe("this region's RPO now: its oldest change not yet verified in the peer"),
    overdue: z.boolean().describe("no report, or none checked in the last three periods"),
    report: readinessReport.optional().describe("the latest check: run here (DR) or received (primary)"),
  })
  .meta({ id: "ReadinessStatus" });

export const drill = z
  .strictObject({
    tenantId: z.string(),
    drillId: z.string(),
    state: z.enum(drillStates),
    phase: z.enum(drillPhases),
    pools: z.array(z.string()),
    sampleUsers: count.optional(),
    users: z.array(z.string()).optional(),
    drillPools: z.array(z.string()).optional(),
    sessions: z
      .array(z.strictObject({ sessionId: z.string(), userId: z.string(), poolId: z.string() }))
      .optional(),
    attachedAt: z.record(z.string(), z.number()).optional(),
    phaseStartedAt: timestamp.optional(),
    steps: count.optional(),
    stepAt: timestamp.optional(),
    startedAt: timestamp,
    finishedAt: timestamp.optional(),
    rpoMs: z.number().optional(),
    rpoNote: z.string().optional(),
    rtoFirstLogonMs: z.number().optional(),
    rtoAllLogonsMs: z.number().optional(),
    usersPlanned: count.optional(),
    usersLoggedOn: count.optional(),
    usersVerified: count.optional(),
    usersFailed: z.array(z.strictObject({ userId: z.string(), reason: z.string() })).optional(),
    bytesShipped: bytes.optional(),
    error: z.string().optional(),
  })
  .meta({ id: "Drill" });

export const metricSeries = z
  .strictObject({
    stepSeconds: z.number().int().positive(),
    from: timestamp,
    to: timestamp,
    series: z.array(
      z.strictObject({
        name: z.enum(metricNames),
        poolId: z.string().optional().describe("a per-pool figure's pool (one series per pool)"),
        unit: z.enum(["Count", "Milliseconds", "Seconds"]),
        points: z.array(
          z.strictObject({
            t: timestamp.describe("the step's start"),
            count: count.describe("observations in the step"),
            sum: z.number().describe("their sum: a mean is sum / count"),
          }),
        ),
      }),
    ),
  })
  .meta({ id: "MetricSeries" });
