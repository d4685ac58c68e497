/**
 * Continuous DR readiness: once per period, without starting desktops, the DR region checks that
 * it could take over a tenant — a rotating sample of users' data matches the primary's content
 * checksum at the same version, and every READY image version and pool of the primary is there.
 *
 *   schedule (primary)  -> own queue:  sample-readiness   (one per tenant and period)
 *   primary worker      -> peer queue: verify-readiness   (the sample, versions, pools, RPO)
 *   DR worker           -> its table:  the report; readinessFailures; -> primary: readiness-report
 *   primary worker      -> its table:  the report received; readinessFailures
 *
 * Every step is idempotent (a period's check id is the period's start), so a schedule run twice,
 * or a message delivered twice, checks again and stores the same report.
 */
import { logger } from "../logger.ts";
import type { ReplicationMessage } from "../messages/replication.ts";
import type { Ports } from "../ports/index.ts";
import { requirePeer } from "./common.ts";
import type { ReadinessReport, UserData } from "./dr-model.ts";
import { liveStandbyPools, versionTombstone } from "./replication-config.ts";
import { replicationBacklog } from "./replication-status.ts";

type Msg<K extends ReplicationMessage["kind"]> = Extract<ReplicationMessage, { kind: K }>;
type ReadinessPorts = Pick<
  Ports,
  | "dr"
  | "userData"
  | "userDataStore"
  | "images"
  | "pools"
  | "peer"
  | "replication"
  | "clock"
  | "region"
  | "metrics"
>;

export const defaultReadinessPeriodMs = 15 * 60_000;
export const defaultReadinessSampleUsers = 20;

export interface ReadinessSettings {
  periodMs: number;
  sampleUsers: number;
}

/** The settings of a configuration's timing, with their defaults. */
export function readinessSettings(timing: {
  readinessPeriodMs?: number;
  readinessSampleUsers?: number;
}): ReadinessSettings {
  return {
    periodMs: timing.readinessPeriodMs ?? defaultReadinessPeriodMs,
    sampleUsers: timing.readinessSampleUsers ?? defaultReadinessSampleUsers,
  };
}

/** The period a time falls in, as its start (ISO): the id of that period's check. */
export function readinessCheckId(now: Date, periodMs: number): string {
  return new Date(Math.floor(now.getTime() / periodMs) * periodMs).toISOString();
}

/**
 * `size` items of a (sorted) list for period number `period`: each period starts where the last one
 * ended, wrapping, so every item is checked once every ceil(length / size) periods.
 */
export function rotatingSample<T>(items: readonly T[], period: number, size: number): T[] {
  if (items.length <= size) return [...items];
  const start = (((period * size) % items.length) + items.length) % items.length;
  return Array.from({ length: size }, (_, i) => items[(start + i) % items.length] as T);
}

/**
 * The schedule (the reconciler function, on its own rule): one `sample-readiness` per tenant for the
 * current period, on this region's own queue. Short whatever the tenants hold: the work is theirs.
 */
export async function startReadinessChecks(
  ports: Pick<Ports, "dr" | "replication" | "peer" | "clock">,
  periodMs: number,
): Promise<{ checkId: string; tenants: number }> {
  const checkId = readinessCheckId(ports.clock.now(), periodMs);
  if (!ports.peer) return { checkId, tenants: 0 };
  const tenantIds = await ports.dr.listTenantIds();
  await ports.replication.send(
    tenantIds.map((tenantId) => ({ kind: "sample-readiness", tenantId, checkId })),
  );
  return { checkId, tenants: tenantIds.length };
}

/** Source region: what the peer must hold of the tenant, sent to it to compare. */
export async function sampleReadiness(
  ports: ReadinessPorts,
  m: Msg<"sample-readiness">,
  settings: ReadinessSettings,
): Promise<string> {
  const peer = requirePeer(ports);
  const state = await ports.dr.getState(m.tenantId);
  // The region that holds the tenant's replica is the one that checks, not the one that asks.
  if (state?.configAppliedAt) return "skipped: this region holds the tenant's replica";
  if (state?.failedOver) return "skipped: the tenant is served by the peer";
  const [records, backlog, images, pools] = await Promise.all([
    ports.userData.list(m.tenantId),
    replicationBacklog(ports, m.tenantId),
    ports.images.listImages(m.tenantId),
    ports.pools.list(m.tenantId),
  ]);
  const withData = records
    .filter((u) => u.version > 0)
    .sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
  const period = Math.floor(Date.parse(m.checkId) / settings.periodMs);
  const sample = rotatingSample<UserData>(withData, period, settings.sampleUsers);
  const deletedVersions = new Set(state?.deletedVersions ?? []);
  const deletedPools = new Set(state?.deletedPools ?? []);
  const versions = (await Promise.all(images.map((i) => ports.images.listVersions(m.tenantId, i.imageId))))
    .flat()
    .filter((v) => v.state === "READY" && !deletedVersions.has(versionTombstone(v)));
  const live = pools.filter((p) => p.state === "ACTIVE" && !deletedPools.has(p.poolId));
  await peer.send([
    {
      kind: "verify-readiness",
      tenantId: m.tenantId,
      checkId: m.checkId,
      sourceRegion: ports.region.name,
      sampledAt: ports.clock.now().toISOString(),
      rpoMs: backlog.pendingChanges > 0 ? backlog.oldestPendingAgeMs : 0,
      usersTotal: withData.length,
      users: sample.map((u) => ({
        userId: u.userId,
        version: u.version,
        replicatedVersion: u.replicatedVersion,
        sha256: u.sha256,
      })),
      imageVersions: versions.map((v) => ({
        imageId: v.imageId,
        version: v.version,
        createdAt: v.createdAt,
        ...(v.sha256 ? { sha256: v.sha256 } : {}),
      })),
      pools: live.map((p) => ({ poolId: p.poolId, createdAt: p.createdAt })),
    },
  ]);
  return `sampled ${sample.length} of ${withData.length} users, ${versions.length} image versions, ${live.length} pools`;
}

type UserFinding = ReadinessReport["users"][number];

/**
 * Target region: compares its copies with the source's list — each sampled user's record and the
 * content checksum of the disk file itself, recomputed — and stores and returns the report. A user
 * whose latest change has not arrived yet is not comparable, not a failure (unless the source was
 * told it arrived); so is configuration younger than a period (its replication may be on its way).
 */
export async function verifyReadiness(
  ports: ReadinessPorts,
  m: Msg<"verify-readiness">,
  settings: ReadinessSettings,
): Promise<string> {
  const peer = requirePeer(ports);
  const state = await ports.dr.getState(m.tenantId);
  const users: UserFinding[] = [];
  for (const u of m.users) users.push(await checkUser(ports, m.tenantId, u));
  const failures: ReadinessReport["failures"] = users
    .filter((u) => u.state === "FAILED")
    .map((u) => ({ kind: "user-data", id: u.userId, reason: u.reason ?? "failed" }));
  const sampledAt = Date.parse(m.sampledAt);
  const young = (createdAt: string | undefined) =>
    createdAt !== undefined && sampledAt - Date.parse(createdAt) < settings.periodMs;
  for (const v of m.imageVersions) {
    const local = await ports.images.getVersion(m.tenantId, v.imageId, v.version);
    const id = versionTombstone(v);
    if (!local) {
      if (!young(v.createdAt)) failures.push({ kind: "image-version", id, reason: "not in this region" });
    } else if (local.state !== "READY")
      failures.push({ kind: "image-version", id, reason: `${local.state} in this region` });
    else if (v.sha256 && local.sha256 !== v.sha256)
      failures.push({ kind: "image-version", id, reason: "its checksum differs from the primary's" });
  }
  const standby = new Set(liveStandbyPools(state).map((p) => p.poolId));
  for (const p of m.pools)
    if (!standby.has(p.poolId) && !young(p.createdAt))
      failures.push({ kind: "pool", id: p.poolId, reason: "no standby configuration in this region" });
  const report: ReadinessReport = {
    tenantId: m.tenantId,
    checkId: m.checkId,
    sourceRegion: m.sourceRegion,
    checkedRegion: ports.region.name,
    sampledAt: m.sampledAt,
    checkedAt: ports.clock.now().toISOString(),
    ok: failures.length === 0,
    rpoMs: m.rpoMs,
    usersTotal: m.usersTotal,
    users,
    imageVersionsChecked: m.imageVersions.length,
    poolsChecked: m.pools.length,
    failures,
  };
  const saved = await ports.dr.putReadiness(report);
  // One figure per check, whatever the deliveries: the alarm counts checks that failed.
  if (saved.first) ports.metrics.record(m.tenantId, "readinessFailures", failures.length);
  if (failures.length > 0) logger.warn("DR readiness check failed", { tenantId: m.tenantId, failures });
  await peer.send([{ kind: "readiness-report", tenantId: m.tenantId, report }]);
  const comparable = users.filter((u) => u.state !== "NOT_COMPARABLE").length;
  return `checked ${comparable} of ${users.length} users, ${report.imageVersionsChecked} versions, ${report.poolsChecked} pools: ${failures.length} failures`;
}

async function checkUser(
  ports: ReadinessPorts,
  tenantId: string,
  u: Msg<"verify-readiness">["users"][number],
): Promise<UserFinding> {
  const ref = { tenantId, userId: u.userId };
  const local = await ports.userData.get(ref);
  const drVersion = local?.version ?? 0;
  const finding = (state: UserFinding["state"], contentVerified: boolean, reason?: string): UserFinding => ({
    userId: u.userId,
    version: u.version,
    drVersion,
    state,
    contentVerified,
    ...(reason ? { reason } : {}),
  });
  if (drVersion < u.version) {
    // The source heard this version verified here: it must be here.
    if (u.replicatedVersion >= u.version)
      return finding(
        "FAILED",
        false,
        `v${u.version} was verified here once, but this region holds v${drVersion}`,
      );
    return finding(
      "NOT_COMPARABLE",
      false,
      `v${u.version} is not replicated yet (this region holds v${drVersion})`,
    );
  }
  if (!local || drVersion > u.version)
    return finding("NOT_COMPARABLE", false, `this region is ahead (v${drVersion}): changed here since`);
  if (local.sha256 !== u.sha256)
    return finding("FAILED", false, `v${u.version}'s recorded checksum differs from the primary's`);
  let content: string;
  try {
    content = await ports.userDataStore.contentSha256(ref, drVersion);
  } catch (err) {
    // A newer version may have been applied (and this one's file removed) meanwhile.
    if ((await ports.userData.get(ref))?.version !== drVersion)
      return finding("NOT_COMPARABLE", false, "changed here while it was checked");
    logger.warn("user data disk unreadable in a readiness check", { ...ref, error: err as Error });
    return finding("FAILED", false, `v${u.version}'s disk is missing or unreadable in this region`);
  }
  if (content !== u.sha256)
    return finding("FAILED", true, `v${u.version}'s disk content checksum differs from the primary's`);
  return finding("OK", true);
}

/** Source region: the peer's report, kept (unless a later one is) for GET /v1/dr/readiness. */
export async function readinessReportReceived(
  ports: Pick<Ports, "dr" | "metrics">,
  m: Msg<"readiness-report">,
): Promise<string> {
  const report: ReadinessReport = {
    ...m.report,
    users: m.report.users.map(({ reason, ...u }) => ({ ...u, ...(reason ? { reason } : {}) })),
  };
  const saved = await ports.dr.putReadiness(report);
  if (!saved.written) return `skipped: a later report than ${report.checkId}'s is stored`;
  if (saved.first) ports.metrics.record(m.tenantId, "readinessFailures", report.failures.length);
  return `report of ${report.checkId} from ${report.checkedRegion}: ${report.failures.length} failures`;
}

/**
 * GET /v1/dr/readiness, in either region: the latest report (in DR the one it checked, in the
 * primary the one it received), whether it is overdue, and this region's RPO now.
 */
export async function readinessStatus(
  ports: Pick<Ports, "dr" | "userData" | "clock" | "region" | "peer">,
  tenantId: string,
  settings: ReadinessSettings,
) {
  const [report, backlog] = await Promise.all([
    ports.dr.getReadiness(tenantId),
    replicationBacklog(ports, tenantId),
  ]);
  const now = ports.clock.now().getTime();
  return {
    region: ports.region.name,
    ...(ports.peer ? { peer: ports.peer.name } : {}),
    periodMs: settings.periodMs,
    sampleUsers: settings.sampleUsers,
    currentRpoMs: backlog.pendingChanges > 0 ? backlog.oldestPendingAgeMs : 0,
    overdue: !report || now - Date.parse(report.checkedAt) > 3 * settings.periodMs,
    ...(report ? { report } : {}),
  };
}
