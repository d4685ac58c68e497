import type { CloneJob } from "../messages/clone-job.ts";
import type { Ports } from "../ports/index.ts";
import { assertActive, desktopRef, requirePool } from "./common.ts";
import { DomainError } from "./errors.ts";
import type { Pool } from "./model.ts";
import { describePool, usableVersion } from "./pools.ts";
import { logoff } from "./sessions.ts";

type RecomposePorts = Pick<
  Ports,
  "images" | "pools" | "desktops" | "sessions" | "jobs" | "clock" | "userDataJobs"
>;

/**
 * Moves a pool onto another image version: free desktops at once (AVAILABLE -> RECOMPOSING ->
 * AVAILABLE, throttled per datastore by the worker), busy ones when their user logs off (the
 * refresh job rebuilds on the pool's version), or at once with `force` (their users are logged
 * off first). Running it again is safe: it only moves what is not on the target yet.
 */
export async function recomposePool(
  ports: RecomposePorts,
  tenantId: string,
  poolId: string,
  input: { imageVersion: number; force?: boolean },
) {
  const pool = await requirePool(ports, tenantId, poolId);
  assertActive(pool);
  const version = await usableVersion(ports, tenantId, pool.imageId, input.imageVersion);
  const recompose: NonNullable<Pool["recompose"]> =
    version.version === pool.imageVersion && pool.recompose
      ? pool.recompose
      : {
          fromVersion: pool.imageVersion,
          toVersion: version.version,
          startedAt: ports.clock.now().toISOString(),
        };
  await ports.pools.startRecompose(tenantId, poolId, version.version, recompose);

  const jobs: CloneJob[] =
    pool.cloneType === "linked"
      ? pool.datastoreIds.map((datastoreId) => ({
          kind: "prepare-replica",
          tenantId,
          imageId: pool.imageId,
          version: version.version,
          datastoreId,
        }))
      : [];
  for (const d of await ports.desktops.list(tenantId, poolId)) {
    if (d.imageVersion === version.version) continue;
    if (d.state === "AVAILABLE" && (await ports.desktops.transition(d, "AVAILABLE", "RECOMPOSING")))
      jobs.push({ kind: "recompose-desktop", ...desktopRef(d) });
    else if (d.state === "ASSIGNED" && input.force && d.sessionId)
      // The logoff's refresh job sees the version change and rebuilds on the new version.
      await logoff(ports, tenantId, d.sessionId, "recompose");
  }
  await ports.jobs.send(jobs);
  return describePool(ports, tenantId, poolId);
}

/** Returns the pool to the version it had before its last recompose, the same way. */
export async function rollbackRecompose(
  ports: RecomposePorts,
  tenantId: string,
  poolId: string,
  input: { force?: boolean },
) {
  const pool = await requirePool(ports, tenantId, poolId);
  if (!pool.recompose) throw new DomainError("noRecompose", `pool ${poolId} has never been recomposed`);
  return recomposePool(ports, tenantId, poolId, {
    imageVersion: pool.recompose.fromVersion,
    ...(input.force !== undefined ? { force: input.force } : {}),
  });
}
