/**
 * Response schemas of the v1 API: what each route answers, for the OpenAPI document and for the
 * tests that check every answer against it. The entity schemas are tied to the domain's types at
 * compile time (see the checks at the end), so the contract cannot drift from the code silently.
 */
import { z } from "zod";
import { type DesktopState, desktopStates } from "../domain/desktop-state.ts";
import { metricNames } from "../domain/metric-catalogue.ts";
import {
  assignments,
  cloneTypes,
  type Datastore,
  type Desktop,
  type Drill,
  type DrState,
  drillPhases,
  drillStates,
  type Image,
  type ImageVersion,
  imageVersionStates,
  type Pool,
  poolStates,
  type ReadinessReport,
  readinessFailureKinds,
  readinessUserStates,
  refreshPolicies,
  type Session,
  sessionEndings,
  sessionStates,
  type Tenant,
} from "../domain/model.ts";

const timestamp = z.string().describe("ISO 8601 date-time");
const count = z.number().int().min(0);
const bytes = z.number().min(0);

export const tenant = z
  .strictObject({ tenantId: z.string(), name: z.string(), createdAt: timestamp })
  .meta({ id: "Tenant" });
export const createdTenant = tenant
  .extend({
    apiKey: z.string().describe("shown once; only its hash is stored"),
  })
  .meta({ id: "CreatedTenant" });

export const datastore = z
  .strictObject({
    datastoreId: z.string(),
    path: z.string(),
    capacityGiB: z.number(),
    overcommit: z.number(),
    hostId: z.string().optional(),
    createdAt: z.string().describe("ISO 8601 date-time; empty for the region's default datastore"),
  })
  .meta({ id: "Datastore" });
export const datastoreUsage = datastore
  .extend({
    provisionedBytes: bytes,
    effectiveFreeBytes: z.number(),
    provisionedPercent: z.number(),
  })
  .meta({ id: "DatastoreUsage" });
export const rebalanceResult = z
  .strictObject({
    datastoreId: z.string(),
    thresholdPercent: z.number(),
    moved: z.array(z.strictObject({ from: z.string(), to: z.string() })),
    remainingExcessBytes: bytes,
  })
  .meta({ id: "RebalanceResult" });

export const image = z
  .strictObject({
    tenantId: z.string(),
    imageId: z.string(),
    name: z.string(),
    latestVersion: count,
    createdAt: timestamp,
  })
  .meta({ id: "Image" });
export const imageVersion = z
  .strictObject({
    tenantId: z.string(),
    imageId: z.string(),
    version: z.number().int().positive(),
    state: z.enum(imageVersionStates),
    source: z.union([z.strictObject({ path: z.string() }), z.strictObject({ blankSizeMiB: z.number() })]),
    sha256: z.string().optional(),
    virtualSizeBytes: bytes.optional(),
    fileBytes: bytes.optional(),
    error: z.string().optional(),
    createdAt: timestamp,
    readyAt: timestamp.optional(),
    retiredAt: timestamp.optional(),
  })
  .meta({ id: "ImageVersion" });
export const imageWithVersions = image
  .extend({ versions: z.array(imageVersion) })
  .meta({ id: "ImageWithVersions" });

const recomposeTarget = z.strictObject({
  fromVersion: z.number().int(),
  toVersion: z.number().int(),
  startedAt: timestamp,
});
export const pool = z
  .strictObject({
    tenantId: z.string(),
    poolId: z.string(),
    name: z.string(),
    imageId: z.string(),
    imageVersion: z.number().int().positive(),
    assignment: z.enum(assignments),
    cloneType: z.enum(cloneTypes),
    refreshPolicy: z.enum(refreshPolicies),
    refreshWhenDeltaExceedsPercent: z.number().optional(),
    refreshEveryDays: z.number().optional(),
    size: count,
    datastoreIds: z.array(z.string()),
    recompose: recomposeTarget.optional(),
    state: z.enum(poolStates),
    createdAt: timestamp,
  })
  .meta({ id: "Pool" });
const desktopCounts = z.strictObject(
  Object.fromEntries(desktopStates.map((s) => [s, count])) as Record<DesktopState, typeof count>,
);
export const poolDescription = pool
  .extend({
    desktopCounts: desktopCounts.describe("desktops of the pool by state"),
    recompose: recomposeTarget
      .extend({ done: count, pending: count, failed: count })
      .optional()
      .describe("the last recompose and its progress, counted from the desktops"),
  })
  .meta({ id: "PoolDescription" });

const desktopConsole = z.strictObject({
  host: z.string(),
  port: z.number().int(),
  websocketPort: z.number().int().optional(),
});
export const desktop = z
  .strictObject({
    tenantId: z.string(),
    poolId: z.string(),
    desktopId: z.string(),
    slot: z.number().int().optional(),
    state: z.enum(desktopStates),
    datastoreId: z.string(),
    imageId: z.string(),
    imageVersion: z.number().int(),
    cloneType: z.enum(cloneTypes).optional(),
    provisionedBytes: bytes.optional(),
    assignedUserId: z.string().optional(),
    pristineAt: timestamp.optional(),
    sessionId: z.string().optional(),
    userId: z.string().optional(),
    sessionStartedAt: timestamp.optional(),
    lastSessionId: z.string().optional(),
    generation: z.number().int().optional(),
    resentAt: timestamp.optional(),
    console: desktopConsole.optional(),
    connectedSessionId: z.string().optional(),
    error: z.string().optional(),
    updatedAt: timestamp,
  })
  .meta({ id: "Desktop" });
export const desktopWithDelta = desktop
  .extend({
    deltaBytes: bytes.describe("bytes allocated by the desktop's delta"),
  })
  .meta({ id: "DesktopWithDelta" });

export const session = z
  .strictObject({
    tenantId: z.string(),
    sessionId: z.string(),
    poolId: z.string(),
    desktopId: z.string(),
    userId: z.string(),
    state: z.enum(sessionStates),
    datastoreId: z.string().optional(),
    startedAt: timestamp,
    endedAt: timestamp.optional(),
    endedBy: z.enum(sessionEndings).optional(),
  })
  .meta({ id: "Session" });
const connection = z.discriminatedUnion("protocol", [
  desktopConsole.extend({
    protocol: z.literal("vnc"),
    password: z.string().optional().describe("one-time; a new one at every logon, never stored"),
    expiresAt: timestamp.optional(),
    state: z.enum(["PREPARING", "READY"]),
  }),
  z.strictObject({ protocol: z.literal("external"), detail: z.string() }),
]);
const userDataStates = ["ATTACHING", "ATTACHED", "READ_ONLY", "COMMITTING", "COMMITTED"] as const;
export const logonResult = session
  .extend({
    connection,
    reconnected: z.boolean().describe("the user already had a session in this pool"),
    userData: z.strictObject({ state: z.literal("ATTACHING") }).optional(),
  })
  .meta({ id: "LogonResult" });
export const sessionDescription = session
  .extend({
    userData: z.strictObject({ state: z.enum(userDataStates), version: count.optional() }),
    connection: connection.optional(),
  })
  .meta({ id: "SessionDescription" });

const space = {
  usedBytes: bytes,
  provisionedBytes: bytes,
  fullCloneBytes: bytes,
  savedBytes: z.number(),
  replicaBytes: bytes,
  deltaBytes: bytes,
  desktops: count,
};
export const storageReport = z
  .strictObject({
    total: z.strictObject(space),
    datastores: z.array(z.strictObject({ datastoreId: z.string(), ...space })),
    pools: z.array(
      z.strictObject({ poolId: z.string(), name: z.string(), cloneType: z.enum(cloneTypes), ...space }),
    ),
  })
  .meta({ id: "StorageReport" });

const drFlags = {
  tenantId: z.string(),
  failedOver: z.boolean().optional(),
  failedOverAt: timestamp.optional(),
  failingBack: z.boolean().optional(),
  failedBackAt: timestamp.optional(),
  configAppliedAt: timestamp.optional(),
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
    shippedImages: z.array(z.string()).optional(),
  })
  .meta({ id: "DrState" });
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

export const health = z.strictObject({ status: z.literal("ok") });
export const items = <T extends z.ZodType>(item: T) => z.strictObject({ items: z.array(item) });

/*
 * Compile-time ties to the domain: each entity type must fit its schema and the schema's type
 * must fit the entity, so a field added to one and not the other fails the typecheck.
 */
type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
// Optional fields make any two types mutually assignable: the keys must be the same too.
type Same<A, B> = Mutual<A, B> extends true ? Mutual<keyof A, keyof B> : false;
type Tied<T extends true> = T;
export type EntityChecks = [
  Tied<Same<Tenant, z.infer<typeof tenant>>>,
  Tied<Same<Datastore, z.infer<typeof datastore>>>,
  Tied<Same<Image, z.infer<typeof image>>>,
  Tied<Same<ImageVersion, z.infer<typeof imageVersion>>>,
  Tied<Same<Pool, z.infer<typeof pool>>>,
  Tied<Same<Desktop, z.infer<typeof desktop>>>,
  Tied<Same<Session, z.infer<typeof session>>>,
  Tied<Same<Drill, z.infer<typeof drill>>>,
  Tied<Same<DrState, z.infer<typeof drState>>>,
  Tied<Same<ReadinessReport, z.infer<typeof readinessReport>>>,
];

/** The answers as types, for the API's own clients (the CLI, the web console): one contract. */
export type PoolDescription = z.infer<typeof poolDescription>;
export type RecomposeProgress = NonNullable<PoolDescription["recompose"]>;
export type DesktopWithDelta = z.infer<typeof desktopWithDelta>;
export type SessionDescription = z.infer<typeof sessionDescription>;
export type LogonResult = z.infer<typeof logonResult>;
export type StorageReport = z.infer<typeof storageReport>;
export type SpaceFigures = StorageReport["total"];
export type ReplicationStatus = z.infer<typeof replicationStatus>;
export type DatastoreUsage = z.infer<typeof datastoreUsage>;
export type MetricSeries = z.infer<typeof metricSeries>;
