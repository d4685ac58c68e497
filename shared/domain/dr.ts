import type { ReplicationMessage } from "../messages/replication.ts";
import type { Ports } from "../ports.ts";
import { allowedDatastores, type DefaultDatastore } from "./datastores.ts";
import { conflict, DomainError, invalid, notFound, RetryLater } from "./errors.ts";
import { newId } from "./ids.ts";
import type { Desktop, Pool, Tenant } from "./model.ts";
import { createPool, deletePool, provisionPool, usableVersion } from "./pools.ts";
import { replicationBacklog } from "./replication.ts";
import { logon } from "./sessions.ts";

/** A region's disaster-recovery state for one tenant. */
export interface DrState {
  tenantId: string;
  /** Primary: the tenant is served by the peer. DR: this region serves the tenant. */
  failedOver?: boolean;
  failedOverAt?: string;
  failingBack?: boolean;
  failedBackAt?: string;
  /** DR: the peer's pools, as replicated; a drill or a failover turns them into desktops. */
  standbyPools?: Pool[];
  configAppliedAt?: string;
  /** Source: image versions already in the peer's bucket ("<imageId>@<n>"), shipped once each. */
  shippedImages?: string[];
}

export type DrillState = "RUNNING" | "SUCCEEDED" | "FAILED";

export interface Drill {
  tenantId: string;
  drillId: string;
  state: DrillState;
  phase: "STARTING" | "PROVISIONING" | "LOGGING_ON" | "VERIFYING" | "CLEANING_UP" | "DONE";
  pools: string[];
  sampleUsers?: number;
  drillPools?: string[];
  startedAt: string;
  finishedAt?: string;
  /** Age of the oldest change the peer committed but this region had not applied at drill start. */
  rpoMs?: number;
  rpoNote?: string;
  /** Drill start to the first / to every user logged on with their data attached. */
  rtoFirstLogonMs?: number;
  rtoAllLogonsMs?: number;
  usersPlanned?: number;
  usersLoggedOn?: number;
  usersVerified?: number;
  usersFailed?: { userId: string; reason: string }[];
  bytesShipped?: number;
  error?: string;
}

/** The primary refuses logons while the tenant is failed over (checked on the cached principal). */
export function assertServing(tenant: Tenant & { failedOver?: boolean }) {
  if (tenant.failedOver)
    throw conflict(
      "tenant-failed-over",
      `tenant ${tenant.tenantId} is failed over to the DR region until failback`,
    );
}

export async function startDrill(
  ports: Ports,
  tenantId: string,
  input: { pools: string[]; sampleUsers?: number | undefined },
): Promise<Drill> {
  const state = await ports.dr.getState(tenantId);
  const standby = new Set((state?.standbyPools ?? []).map((p) => p.poolId));
  input.pools.forEach((p, i) => {
    if (!standby.has(p))
      throw invalid(`pools[${i}]`, `pool ${p} has no replicated configuration in this region`);
  });
  const drill: Drill = {
    tenantId,
    drillId: newId("drl"),
    state: "RUNNING",
    phase: "STARTING",
    pools: input.pools,
    ...(input.sampleUsers ? { sampleUsers: input.sampleUsers } : {}),
    startedAt: ports.clock.now().toISOString(),
  };
  await ports.dr.putDrill(drill);
  await ports.replication.send([{ kind: "run-drill", tenantId, drillId: drill.drillId }]);
  return drill;
}

export async function getDrill(ports: Pick<Ports, "dr">, tenantId: string, drillId: string) {
  const drill = await ports.dr.getDrill(tenantId, drillId);
  if (!drill) throw notFound("drill", drillId);
  return drill;
}

const pollMs = 200;
const pause = () => new Promise((r) => setTimeout(r, pollMs));

/** Polls the table until `done` holds or the deadline passes (a drill's wait, not a test's). */
async function until(what: string, done: () => Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`drill timed out waiting for ${what}`);
    await pause();
  }
}

/**
 * The drill job: desktops from the replicated pools and images, every user with replicated data
 * (or a sample) logged on with their data checked against the source's checksum, RPO and RTO
 * measured, then the drill's desktops and sessions removed. The user data is never committed.
 * A re-run after a crash starts over on the same drill pools.
 */
export async function runDrill(
  ports: Ports,
  m: Extract<ReplicationMessage, { kind: "run-drill" }>,
  defaults: DefaultDatastore,
) {
  let drill = await getDrill(ports, m.tenantId, m.drillId);
  if (drill.state !== "RUNNING") return `skipped: drill is ${drill.state}`;
  const started = Date.parse(drill.startedAt);
  const save = async (patch: Partial<Drill>) => {
    drill = { ...drill, ...patch };
    await ports.dr.putDrill(drill);
  };
  const drillPools: string[] = [];
  try {
    const state = await ports.dr.getState(m.tenantId);
    const users = (await ports.userData.list(m.tenantId)).filter((u) => u.version > 0);
    const chosen = users.slice(0, drill.sampleUsers ?? users.length);
    const changes = await ports.userData.listChanges(m.tenantId);
    const bytesShipped = changes
      .filter((c) => c.origin !== ports.region.name)
      .reduce((sum, c) => sum + c.deltaBytes, 0);
    await save({
      ...rpoAtStart(ports, drill, changes),
      usersPlanned: chosen.length,
      bytesShipped,
      phase: "PROVISIONING",
    });

    const sources = (state?.standbyPools ?? []).filter((p) => drill.pools.includes(p.poolId));
    if (drill.drillPools) drillPools.push(...drill.drillPools);
    else {
      for (const src of sources) {
        // At least one desktop per user, so every user is served at once.
        const size = Math.max(src.size, Math.ceil(chosen.length / sources.length));
        const pool = await createPool(
          ports,
          m.tenantId,
          {
            name: `drill-${drill.drillId}-${src.name}`,
            imageId: src.imageId,
            imageVersion: src.imageVersion,
            size,
          },
          defaults,
        );
        drillPools.push(pool.poolId);
      }
      await save({ drillPools });
    }
    await until(
      "drill desktops",
      async () => {
        const all = await Promise.all(drillPools.map((p) => ports.desktops.list(m.tenantId, p)));
        return all.every((ds) => ds.every((d: Desktop) => d.state === "AVAILABLE"));
      },
      10 * 60_000,
    );

    await save({ phase: "LOGGING_ON" });
    const sessions = await Promise.all(
      chosen.map(async (u, i) => {
        const poolId = drillPools[i % drillPools.length] as string;
        return (await logon(ports, m.tenantId, poolId, u.userId)).session;
      }),
    );
    const readyAt = new Map<string, number>();
    await until(
      "user data attached",
      async () => {
        await Promise.all(
          sessions.map(async (s) => {
            if (readyAt.has(s.userId)) return;
            const record = await ports.userData.get(s);
            if (record?.attachedSessionId === s.sessionId) readyAt.set(s.userId, Date.now());
          }),
        );
        return readyAt.size === sessions.length;
      },
      5 * 60_000,
    );
    const times = [...readyAt.values()];
    await save({
      phase: "VERIFYING",
      usersLoggedOn: sessions.length,
      ...(times.length
        ? { rtoFirstLogonMs: Math.min(...times) - started, rtoAllLogonsMs: Math.max(...times) - started }
        : {}),
    });

    const failed: { userId: string; reason: string }[] = [];
    for (const u of chosen) {
      const record = await ports.userData.get(u);
      const source = changes.find((c) => c.userId === u.userId && c.version === record?.version);
      const actual = record
        ? await ports.userDataStore.contentSha256(u, record.attachedVersion ?? record.version)
        : "";
      if (!record || !source) failed.push({ userId: u.userId, reason: "no replicated version" });
      else if (actual !== source.sha256)
        failed.push({ userId: u.userId, reason: `checksum ${actual} != source ${source.sha256}` });
    }
    await save({ usersVerified: chosen.length - failed.length, usersFailed: failed, phase: "CLEANING_UP" });

    // Discard before the pool's deletion ends the sessions: a drill never changes user data.
    await ports.userDataJobs.send(sessions.map((s) => ({ kind: "discard-user-data", ...s })));
    for (const p of drillPools) await deletePool(ports, m.tenantId, p);
    await save({
      phase: "DONE",
      state: failed.length ? "FAILED" : "SUCCEEDED",
      finishedAt: ports.clock.now().toISOString(),
    });
    return `drill ${drill.drillId}: ${chosen.length - failed.length}/${chosen.length} users verified`;
  } catch (err) {
    if (err instanceof RetryLater) throw err;
    for (const p of drillPools) await deletePool(ports, m.tenantId, p).catch(() => undefined);
    await save({
      state: "FAILED",
      phase: "DONE",
      error: (err as Error).message,
      finishedAt: ports.clock.now().toISOString(),
    });
    if (err instanceof DomainError) return `drill failed: ${err.message}`;
    return `drill failed: ${(err as Error).message}`;
  }
}

/**
 * RPO as this region can know it: the oldest change the source shipped here that was not applied
 * yet at drill start (changes the source has not shipped at all are its own backlog, shown by
 * GET /v1/dr/replication there).
 */
function rpoAtStart(
  ports: Pick<Ports, "region">,
  drill: Drill,
  changes: { origin: string; committedAt: string; replicatedAt?: string }[],
) {
  const start = Date.parse(drill.startedAt);
  const incoming = changes.filter(
    (c) => c.origin !== ports.region.name && Date.parse(c.committedAt) <= start,
  );
  const late = incoming.filter((c) => !c.replicatedAt || Date.parse(c.replicatedAt) > start);
  const oldest = late.reduce((min, c) => Math.min(min, Date.parse(c.committedAt)), start);
  return {
    rpoMs: start - oldest,
    rpoNote: "changes shipped to this region and not yet applied at drill start",
  };
}

/**
 * DR region: the primary is declared down. The tenant's replicated pools become real pools here
 * (same ids, so clients keep their pool ids) and the primary is told to refuse logons as soon as
 * it can hear it. Users get their latest replicated data; their changes here replicate back.
 */
export async function failover(ports: Ports, tenantId: string, defaults: DefaultDatastore): Promise<DrState> {
  const state = await ports.dr.getState(tenantId);
  if (!state?.standbyPools?.length)
    throw conflict("nothing-to-fail-over", "no replicated pools for this tenant");
  const now = ports.clock.now().toISOString();
  for (const src of state.standbyPools) {
    if (await ports.pools.get(tenantId, src.poolId)) continue;
    // The standby configuration names the primary's datastores: here the region's own are used.
    const pool: Pool = {
      ...src,
      state: "ACTIVE",
      createdAt: now,
      datastoreIds: await allowedDatastores(ports, defaults, undefined),
    };
    const version = await usableVersion(ports, tenantId, pool.imageId, pool.imageVersion);
    await provisionPool(ports, pool, version, defaults);
  }
  const patch = { failedOver: true, failedOverAt: now, failingBack: false };
  await ports.dr.updateState(tenantId, patch);
  await ports.replication.send([{ kind: "notify-failover", tenantId, failedOver: true }]);
  return { ...state, ...patch };
}

/**
 * DR region: hands the tenant back. Its pools here are drained (sessions end, their data is
 * committed and shipped back); the primary takes users again only once every change made here
 * is applied and verified there.
 */
export async function failback(ports: Ports, tenantId: string): Promise<DrState> {
  const state = await ports.dr.getState(tenantId);
  if (!state?.failedOver) throw conflict("not-failed-over", "the tenant is not failed over to this region");
  for (const src of state.standbyPools ?? []) {
    if (await ports.pools.get(tenantId, src.poolId)) await deletePool(ports, tenantId, src.poolId);
  }
  await ports.dr.updateState(tenantId, { failingBack: true });
  await ports.replication.send([{ kind: "run-failback", tenantId }]);
  return { ...state, failingBack: true };
}

/** The failback job: waits (by redelivery) until the peer has every change, then tells it. */
export async function runFailback(ports: Ports, tenantId: string): Promise<string> {
  const state = await ports.dr.getState(tenantId);
  if (!state?.failingBack) return "skipped: no failback in progress";
  const backlog = await replicationBacklog(ports, tenantId);
  const pools = await Promise.all((state.standbyPools ?? []).map((p) => ports.pools.get(tenantId, p.poolId)));
  if (pools.some(Boolean)) throw new RetryLater("failed-over pools still draining");
  if (backlog.pendingChanges > 0)
    throw new RetryLater(`${backlog.pendingChanges} change(s) not yet replicated back`);
  await notifyFailover(ports, tenantId, false);
  await ports.dr.updateState(tenantId, {
    failedOver: false,
    failingBack: false,
    failedBackAt: ports.clock.now().toISOString(),
  });
  return "failed back";
}

/** Tells the peer; fails (and is retried) while the peer is unreachable. */
export async function notifyFailover(ports: Pick<Ports, "peer">, tenantId: string, failedOver: boolean) {
  if (!ports.peer) throw new Error("this region has no peer region configured");
  await ports.peer.send([{ kind: "set-failover", tenantId, failedOver }]);
  return `peer told failedOver=${failedOver}`;
}

/** Primary region: the peer declared (or ended) a failover of the tenant. */
export async function setFailover(ports: Ports, tenantId: string, failedOver: boolean): Promise<string> {
  await ports.dr.setKeyFailedOver(tenantId, failedOver);
  const now = ports.clock.now().toISOString();
  await ports.dr.updateState(
    tenantId,
    failedOver ? { failedOver, failedOverAt: now } : { failedOver, failedBackAt: now },
  );
  return failedOver ? "tenant failed over: logons refused here" : "tenant failed back: logons served here";
}
