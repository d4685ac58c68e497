import { logger } from "../logger.ts";
import type { CloneJob } from "../messages/clone-job.ts";
import type { Ports } from "../ports/index.ts";
import { commitLater, desktopRef } from "./common.ts";
import { recountReservations } from "./counters.ts";
import type { DesktopState } from "./desktop-state.ts";
import type { Desktop } from "./model.ts";
import { type RepairKind, recordRepair } from "./repairs.ts";
import { logoff } from "./sessions.ts";

export interface ReconcileReport {
  examined: number;
  /** Jobs sent again, by kind. */
  requeued: Record<string, number>;
  /** Records put right, by what was wrong. */
  repaired: Record<string, number>;
}

/** How long an image version may stay PUBLISHING before the reconciler calls it failed. */
export const publishDeadlineMs = 60 * 60_000;

type ReconcilePorts = Pick<
  Ports,
  | "desktops"
  | "sessions"
  | "images"
  | "jobs"
  | "clock"
  | "userData"
  | "userDataJobs"
  | "replication"
  | "peer"
  | "hosts"
  | "datastores"
  | "userDataJobs"
  | "metrics"
  | "pools"
>;

/** A host whose heartbeat is older than this is late: its free desktops are withdrawn. */
export const defaultHostDeadlineMs = 30_000;

/**
 * Repairs what a crash, a lost message or a lost answer can leave behind. Re-sending a job is
 * always safe because every job re-checks state (and disk jobs are fenced); each re-send is
 * marked, so a desktop gets its job again once per stale period, not at every tick. Every read is
 * a query (the sparse watch index, a partition), never a scan of the table (user data behind
 * replication too: it waits in the watch index); each repair is logged
 * with its ids and counted (repairs.ts). `datastoreIds`: datastores known from configuration (the
 * default one) besides the registered ones, whose files the sweep looks at.
 */
export async function reconcile(
  ports: ReconcilePorts,
  staleAfterMs: number,
  opts: { hostDeadlineMs?: number; datastoreIds?: string[]; sweepEveryMs?: number } = {},
): Promise<ReconcileReport> {
  const now = ports.clock.now();
  const cutoff = new Date(now.getTime() - staleAfterMs).toISOString();
  const report: ReconcileReport = { examined: 0, requeued: {}, repaired: {} };
  const count = (into: Record<string, number>, what: string, n = 1) => {
    if (n > 0) into[what] = (into[what] ?? 0) + n;
  };
  const repaired = (kind: RepairKind, ids: Parameters<typeof recordRepair>[2]) => {
    count(report.repaired, kind);
    recordRepair(ports, kind, ids);
  };

  // A host that stopped heartbeating: its free desktops are withdrawn until it is back (its agent
  // starts them again then); its busy ones keep their sessions.
  const hostCutoff = now.getTime() - (opts.hostDeadlineMs ?? defaultHostDeadlineMs);
  const lateDatastores: string[] = [];
  for (const host of await ports.hosts.list()) {
    const late =
      host.state === "LATE" ||
      (Date.parse(host.lastHeartbeatAt) < hostCutoff &&
        (await ports.hosts.markLate(host.hostId, host.lastHeartbeatAt)));
    if (!late) continue;
    if (host.state === "UP") {
      count(report.repaired, "late-host");
      logger.info("reconciler repair", { repair: "late-host", hostId: host.hostId });
    }
    lateDatastores.push(...host.datastoreIds);
  }
  // One listing for every late host's datastores, not one per host: every pool's desktops (index
  // and partition queries; free desktops have no index by datastore), only in a tick that found one.
  if (lateDatastores.length > 0)
    for (const d of await desktopsOn(ports, lateDatastores, ["AVAILABLE", "STARTING"]))
      if (await ports.desktops.transition(d, d.state, "UNREACHABLE", {}, { generation: d.generation }))
        repaired("withdrawn-desktop", { ...desktopRef(d), from: d.state });

  // Desktops whose job never came (a worker or the logoff path died between a write and a send).
  const stuck = await ports.desktops.listStuck(cutoff);
  const jobs: CloneJob[] = [];
  for (const d of stuck) {
    const job = jobFor(d);
    if (!job) continue;
    jobs.push(job);
    count(report.requeued, job.kind);
    recordRepair(ports, "stuck-desktop", {
      ...desktopRef(d),
      state: d.state,
      since: d.updatedAt,
      job: job.kind,
    });
  }
  await ports.jobs.send(jobs);
  await Promise.all(stuck.map((d) => ports.desktops.markResent(d, now.toISOString())));

  // A desktop that holds a session its user's lock does not name is an orphan nobody can log off.
  const assigned = await ports.desktops.listAssigned();
  for (const d of assigned) {
    if (!d.sessionId || !d.userId) continue;
    const active = await ports.sessions.findActive(d.tenantId, d.poolId, d.userId);
    if (active?.sessionId === d.sessionId) continue;
    // Read again: the listing is a snapshot, and the desktop may have moved on since.
    if ((await ports.sessions.get(d.tenantId, d.sessionId))?.state !== "ACTIVE") continue;
    await logoff(ports, d.tenantId, d.sessionId, "orphaned");
    repaired("orphan-session", { ...desktopRef(d), sessionId: d.sessionId, userId: d.userId });
  }

  // A session whose desktop no longer exists (removed under it): its user's lock still names it.
  // Ended without a desktop to refresh; the user's data is committed as at any logoff.
  const locks = await ports.sessions.listLocksBefore(cutoff);
  for (const lock of locks) {
    if (await ports.desktops.get(lock.tenantId, lock.poolId, lock.desktopId)) continue;
    if (!(await ports.sessions.endWithoutDesktop(lock, now.toISOString(), "desktop-gone"))) continue;
    await commitLater(ports, lock);
    repaired("session-without-desktop", {
      tenantId: lock.tenantId,
      poolId: lock.poolId,
      desktopId: lock.desktopId,
      sessionId: lock.sessionId,
      userId: lock.userId,
    });
  }

  // Disk files are swept where they are: one job per datastore, to the worker that serves it, once
  // per stale period (a sweep reads every file of its datastore).
  const datastoreIds = new Set([
    ...(opts.datastoreIds ?? []),
    ...(await ports.datastores.list()).map((d) => d.datastoreId),
  ]);
  const sweeps = [];
  for (const datastoreId of datastoreIds)
    if (await ports.datastores.takeTurn(`sweep:${datastoreId}`, now, opts.sweepEveryMs ?? staleAfterMs))
      sweeps.push({ kind: "sweep-datastore" as const, datastoreId, olderThan: cutoff });
  await ports.jobs.send(sweeps);
  count(report.requeued, "sweep-datastore", sweeps.length);

  // Reservation counters recounted once per stale period (a recount reads every pool's desktops).
  if (await ports.datastores.takeTurn("recount", now, opts.sweepEveryMs ?? staleAfterMs))
    for (const _ of await recountReservations(ports, now, staleAfterMs, [...datastoreIds]))
      count(report.repaired, "reservation-counter");

  // An import whose job was lost, or that kept failing, ends as FAILED instead of blocking its image.
  const publishCutoff = new Date(now.getTime() - Math.max(staleAfterMs, publishDeadlineMs)).toISOString();
  for (const v of await ports.images.listPublishingBefore(publishCutoff)) {
    await ports.images.completeVersion(v.tenantId, v.imageId, v.version, {
      state: "FAILED",
      error: "the import did not complete in time; publish the version again",
    });
    repaired("stalled-publish", { tenantId: v.tenantId, imageId: v.imageId, version: v.version });
  }

  // A change whose messages were lost (e.g. dead-lettered while the peer was away) is shipped
  // again: shipping and applying are idempotent, and the peer applies in version order.
  const behind = ports.peer ? await ports.userData.listBehind(cutoff) : [];
  const ships = behind.flatMap((u) =>
    Array.from({ length: u.version - u.replicatedVersion }, (_, i) => ({
      kind: "ship-user-data" as const,
      tenantId: u.tenantId,
      userId: u.userId,
      version: u.replicatedVersion + 1 + i,
    })),
  );
  if (ships.length > 0) {
    await ports.replication.send(ships);
    count(report.requeued, "ship-user-data", ships.length);
  }
  report.examined = stuck.length + assigned.length + locks.length + behind.length;
  return report;
}

/** Desktops of every tenant on these datastores in these states, pool by pool. */
async function desktopsOn(
  ports: Pick<Ports, "pools" | "desktops">,
  datastoreIds: string[],
  states: DesktopState[],
) {
  const found: Desktop[] = [];
  for (const pool of await ports.pools.listAll())
    for (const d of await ports.desktops.list(pool.tenantId, pool.poolId))
      if (datastoreIds.includes(d.datastoreId) && states.includes(d.state)) found.push(d);
  return found;
}

function jobFor(d: Desktop): CloneJob | undefined {
  switch (d.state) {
    case "PROVISIONING":
      return { kind: "provision-desktop", ...desktopRef(d) };
    case "DELETING":
      return { kind: "delete-desktop", ...desktopRef(d) };
    case "RECOMPOSING":
      return { kind: "recompose-desktop", ...desktopRef(d) };
    case "ERROR":
      return { kind: "replace-desktop", ...desktopRef(d) };
    case "REFRESHING":
      return d.lastSessionId
        ? { kind: "refresh-desktop", ...desktopRef(d), sessionId: d.lastSessionId }
        : undefined;
    case "STARTING":
      return { kind: "start-desktop", ...desktopRef(d), generation: d.generation ?? 0 };
  }
  return undefined;
}
