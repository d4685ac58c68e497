/**
 * Failover and failback of a tenant between its primary and its DR region. Drills, which prove a
 * failover would work without doing one, are in drill.ts.
 */
import type { Ports } from "../ports/index.ts";
import { requirePeer } from "./common.ts";
import { allowedDatastores, type DefaultDatastore } from "./datastores.ts";
import { DomainError, RetryLater } from "./errors.ts";
import type { DrState, Pool, Tenant } from "./model.ts";
import { deletePool, provisionPool, usableVersion } from "./pools.ts";
import { liveStandbyPools } from "./replication-config.ts";
import { replicationBacklog } from "./replication-status.ts";

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
  | "hosts"
>;

/** The primary refuses logons while the tenant is failed over (checked on the cached principal). */
export function assertServing(tenant: Tenant & { failedOver?: boolean }) {
  if (tenant.failedOver)
    throw new DomainError(
      "tenantFailedOver",
      `tenant ${tenant.tenantId} is failed over to the DR region until failback`,
    );
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
): Promise<DrState> {
  const state = await ports.dr.getState(tenantId);
  // A pool deleted in the primary stays deleted: only the live standbys come up.
  const standbyPools = liveStandbyPools(state);
  if (!state || standbyPools.length === 0)
    throw new DomainError("nothingToFailOver", "no replicated pools for this tenant");
  const now = ports.clock.now().toISOString();
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
  const patch = { failedOver: true, failedOverAt: now, failingBack: false };
  await ports.dr.updateState(tenantId, patch);
  await ports.replication.send([{ kind: "notify-failover", tenantId, failedOver: true }]);
  return { ...state, standbyPools, ...patch };
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
  await requirePeer(ports).send([{ kind: "set-failover", tenantId, failedOver }]);
  return `peer told failedOver=${failedOver}`;
}

/** Primary region: the peer declared (or ended) a failover of the tenant. */
export async function setFailover(
  ports: Pick<Ports, "dr" | "clock">,
  tenantId: string,
  failedOver: boolean,
): Promise<string> {
  await ports.dr.setKeyFailedOver(tenantId, failedOver);
  const now = ports.clock.now().toISOString();
  await ports.dr.updateState(
    tenantId,
    failedOver ? { failedOver, failedOverAt: now } : { failedOver, failedBackAt: now },
  );
  return failedOver ? "tenant failed over: logons refused here" : "tenant failed back: logons served here";
}
