/**
 * Failover and failback of a tenant between its primary and its DR region. Drills, which prove a
 * failover would work without doing one, are in drill.ts.
 */
import type { Ports } from "../ports/index.ts";
import { requirePeer } from "./common.ts";
import { allowedDatastores, type DefaultDatastore } from "./datastores.ts";
import type { DrState } from "./dr-model.ts";
import { DomainError, RetryLater } from "./errors.ts";
import type { Pool, Tenant } from "./model.ts";
import { deletePool, provisionPool, usableVersion } from "./pools.ts";
import { liveStandbyPools } from "./replication-config.ts";
import { replicationBacklog } from "./replication-status.ts";
import { logoff } from "./sessions.ts";

type FailoverPorts = Pick<
  Ports,
  | "hosts"
  | "dr"
  | "pools"
  | "desktops"
  | "sessions"
  | "images"
  | "jobs"
  | "clock"
  | "datastores"
  | "replication"
  | "userDataJobs"
  | "peer"
>;

const failedOverError = (tenantId: string) =>
  new DomainError("tenantFailedOver", `tenant ${tenantId} is failed over to the DR region until failback`);

/** The primary refuses logons while the tenant is failed over (first, cheaply, on the cached principal). */
export function assertServing(tenant: Tenant & { failedOver?: boolean }) {
  if (tenant.failedOver) throw failedOverError(tenant.tenantId);
}

/**
 * The check that holds from the moment a failover returns: the fence the DR region wrote into
 * this region's table, read consistently (never cached). Only a region with a peer has fences.
 */
export async function assertNotFenced(ports: Pick<Ports, "dr" | "peer">, tenantId: string) {
  if (!ports.peer) return;
  if ((await ports.dr.getState(tenantId))?.fenced) throw failedOverError(tenantId);
}

/**
 * DR region: the primary is declared down. The tenant's replicated pools become real pools here
 * (same ids, so clients keep their pool ids) and the primary is told to refuse logons as soon as
 * it can hear it. Users get their latest replicated data; their changes here replicate back.
 */
export async function failover(
  ports: FailoverPorts,
  tenantId: string,
  defaults: DefaultDatastore,
): Promise<DrState & { primaryFenced: boolean }> {
  const state = await ports.dr.getState(tenantId);
  // A pool deleted in the primary stays deleted: only the live standbys come up.
  const standbyPools = liveStandbyPools(state);
  if (!state || standbyPools.length === 0)
    throw new DomainError("nothingToFailOver", "no replicated pools for this tenant");
  const now = ports.clock.now().toISOString();
  // A new epoch, and the primary fenced in it before anything else: from here on it refuses the
  // tenant's logons and keeps its sessions' changes as forks. A primary out of reach (the reason
  // for most failovers) is fenced by the message below once it is back.
  const epoch = (state.epoch ?? 0) + (state.failedOver ? 0 : 1);
  const primaryFenced = await requirePeer(ports)
    .fence(tenantId, epoch, now)
    .then(
      () => true,
      () => false,
    );
  for (const src of standbyPools) {
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
  const patch = { failedOver: true, failedOverAt: now, failingBack: false, epoch };
  await ports.dr.updateState(tenantId, patch);
  await ports.replication.send([{ kind: "notify-failover", tenantId, failedOver: true, epoch }]);
  return { ...state, standbyPools, ...patch, primaryFenced };
}

/**
 * DR region: hands the tenant back. Its pools here are drained (sessions end, their data is
 * committed and shipped back); the primary takes users again only once every change made here
 * is applied and verified there.
 */
export async function failback(ports: FailoverPorts, tenantId: string): Promise<DrState> {
  const state = await ports.dr.getState(tenantId);
  if (!state?.failedOver)
    throw new DomainError("notFailedOver", "the tenant is not failed over to this region");
  for (const src of state.standbyPools ?? []) {
    if (await ports.pools.get(tenantId, src.poolId)) await deletePool(ports, tenantId, src.poolId);
  }
  await ports.dr.updateState(tenantId, { failingBack: true });
  await ports.replication.send([{ kind: "run-failback", tenantId }]);
  return { ...state, failingBack: true };
}

/** The failback job: waits (by redelivery) until the peer has every change, then tells it. */
export async function runFailback(
  ports: Pick<Ports, "dr" | "pools" | "peer" | "clock" | "userData" | "region">,
  tenantId: string,
): Promise<string> {
  const state = await ports.dr.getState(tenantId);
  if (!state?.failingBack) return "skipped: no failback in progress";
  const backlog = await replicationBacklog(ports, tenantId);
  const pools = await Promise.all((state.standbyPools ?? []).map((p) => ports.pools.get(tenantId, p.poolId)));
  if (pools.some(Boolean)) throw new RetryLater("failed-over pools still draining");
  if (backlog.pendingChanges > 0)
    throw new RetryLater(`${backlog.pendingChanges} change(s) not yet replicated back`);
  // The primary serves again in a new epoch: a change made here from now on is an earlier one.
  const epoch = (state.epoch ?? 0) + 1;
  await notifyFailover(ports, tenantId, false, epoch);
  await ports.dr.updateState(tenantId, {
    failedOver: false,
    failingBack: false,
    failedBackAt: ports.clock.now().toISOString(),
    epoch,
  });
  return "failed back";
}

/** Tells the peer; fails (and is retried) while the peer is unreachable. */
export async function notifyFailover(
  ports: Pick<Ports, "peer">,
  tenantId: string,
  failedOver: boolean,
  epoch: number | undefined,
) {
  await requirePeer(ports).send([
    { kind: "set-failover", tenantId, failedOver, ...(epoch === undefined ? {} : { epoch }) },
  ]);
  return `peer told failedOver=${failedOver}`;
}

/**
 * Primary region: the peer declared (or ended) a failover of the tenant. A failover fences the
 * tenant here (if the DR region could not write the fence itself) and ends its sessions, whose
 * changes become forks; a message of an epoch this region has passed changes nothing.
 */
export async function setFailover(
  ports: Pick<Ports, "dr" | "clock" | "pools" | "desktops" | "sessions" | "jobs" | "userDataJobs">,
  tenantId: string,
  failedOver: boolean,
  epoch: number | undefined,
): Promise<string> {
  const now = ports.clock.now().toISOString();
  const at = epoch ?? (await ports.dr.getState(tenantId))?.epoch ?? 0;
  const entered = await ports.dr.enterEpoch(
    tenantId,
    at,
    failedOver
      ? { failedOver, fenced: true, failedOverAt: now }
      : { failedOver, fenced: false, failedBackAt: now },
  );
  if (!entered) return `skipped: epoch ${at} is behind this region's`;
  await ports.dr.setKeyFailedOver(tenantId, failedOver);
  if (!failedOver) return "tenant failed back: logons served here";
  const ended = await endSessions(ports, tenantId);
  return `tenant failed over: logons refused here, ${ended} session(s) ended`;
}

/** Ends every active session of the tenant in this region (their commits become forks). */
async function endSessions(
  ports: Pick<Ports, "pools" | "desktops" | "sessions" | "jobs" | "userDataJobs" | "clock">,
  tenantId: string,
) {
  let ended = 0;
  for (const pool of await ports.pools.list(tenantId)) {
    for (const desktop of await ports.desktops.list(tenantId, pool.poolId)) {
      if (desktop.state !== "ASSIGNED" || !desktop.sessionId) continue;
      await logoff(ports, tenantId, desktop.sessionId, "failover");
      ended++;
    }
  }
  return ended;
}
