/**
 * Small steps many domain modules share. It imports nothing of the domain but the model and the
 * errors, so it can never close an import cycle.
 */
import type { Ports } from "../ports/index.ts";
import type { UserDataRef } from "./dr-model.ts";
import { DomainError, notFound } from "./errors.ts";
import type { Desktop, Pool, Session } from "./model.ts";

/** A desktop's ids, and its datastore when known (the queue of its jobs follows the datastore). */
import { requestSizing } from "./pool-sizing.ts";
export const desktopRef = (
  d: Pick<Desktop, "tenantId" | "poolId" | "desktopId"> & { datastoreId?: string | undefined },
) => ({
  tenantId: d.tenantId,
  poolId: d.poolId,
  desktopId: d.desktopId,
  ...(d.datastoreId ? { datastoreId: d.datastoreId } : {}),
});

export const userRef = (u: UserDataRef): UserDataRef => ({ tenantId: u.tenantId, userId: u.userId });

export async function requirePool(
  ports: Pick<Ports, "pools">,
  tenantId: string,
  poolId: string,
): Promise<Pool> {
  const pool = await ports.pools.get(tenantId, poolId);
  if (!pool) throw notFound("pool", poolId);
  return pool;
}

/** A draining pool takes no logons, resizes or recomposes. */
export function assertActive(pool: Pick<Pool, "poolId" | "state">): void {
  if (pool.state !== "ACTIVE") throw new DomainError("poolNotActive", `pool ${pool.poolId} is ${pool.state}`);
}

/** The session's user data becomes the user's next disk version (a job on the user's FIFO group). */
export function commitLater(
  ports: Pick<Ports, "userDataJobs">,
  session: Pick<Session, "tenantId" | "userId" | "sessionId">,
  after?: "disk-released",
): Promise<void> {
  const { tenantId, userId, sessionId } = session;
  return ports.userDataJobs.send([
    { kind: "commit-user-data", tenantId, userId, sessionId, ...(after ? { after } : {}) },
  ]);
}

/** The peer region, for work that cannot be done without one (a fault: the message is retried). */
export function requirePeer(ports: Pick<Ports, "peer">) {
  if (!ports.peer) throw new Error("this region has no peer region configured");
  return ports.peer;
}

/**
 * Called where a desktop becomes AVAILABLE. One that was being built, refreshed or started when its
 * pool's recompose listed it could not be moved then: now it follows the pool's version
 * (AVAILABLE -> RECOMPOSING; the recompose wrote the pool's version before it listed the desktops,
 * so one of the two always sees the other). Otherwise, in a pool where users wait in line, the
 * first of them is served. Answers whether the desktop went on to a recompose.
 */
export async function desktopFreed(
  ports: Pick<Ports, "pools" | "desktops" | "jobs" | "logonQueue">,
  ref: Pick<Desktop, "tenantId" | "poolId" | "desktopId">,
  /** The desktop as the caller's own write just made it AVAILABLE (saves a read). */
  freed?: Desktop,
): Promise<boolean> {
  const desktop = freed ?? (await ports.desktops.get(ref.tenantId, ref.poolId, ref.desktopId));
  return desktop ? (await desktopsFreed(ports, [desktop])) > 0 : false;
}

/**
 * `desktopFreed` for desktops of one pool freed together (a set provisioned in one job): the pool
 * is read, the line served and the sizer asked once. Answers how many went on to a recompose.
 */
export async function desktopsFreed(
  ports: Pick<Ports, "pools" | "desktops" | "jobs" | "logonQueue">,
  freed: Desktop[],
): Promise<number> {
  const available = freed.filter((d) => d.state === "AVAILABLE");
  const first = available[0];
  if (!first) return 0;
  const pool = await ports.pools.get(first.tenantId, first.poolId);
  if (pool?.state !== "ACTIVE") return 0;
  const behind = available.filter((d) => d.imageVersion !== pool.imageVersion);
  if (behind.length < available.length && pool.maxSize !== undefined) {
    // A self-sizing pool: serve whoever waits, and see whether it has more free desktops than it needs.
    if ((await ports.logonQueue.waiting(pool.tenantId, pool.poolId)) > 0)
      await ports.jobs.send([{ kind: "serve-logons", tenantId: pool.tenantId, poolId: pool.poolId }]);
    await requestSizing(ports, pool.tenantId, pool.poolId);
  }
  let recomposing = 0;
  for (const desktop of behind) {
    if (!(await ports.desktops.transition(desktop, "AVAILABLE", "RECOMPOSING"))) continue;
    await ports.jobs.send([{ kind: "recompose-desktop", ...desktopRef(desktop) }]);
    recomposing++;
  }
  return recomposing;
}
