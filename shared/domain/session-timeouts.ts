/**
 * Session timeouts (issue 11.3): the desktop agent reports disconnects, reconnects and idle time;
 * a pool logs off sessions disconnected or idle for longer than its settings, and ends any session
 * past its maximum lifetime, with a warning first. No scan: each disconnect, idle spell and session
 * start schedules its own check as a delayed job, which re-reads the session when it wakes.
 */
import { logger } from "../logger.ts";
import type { CloneJob } from "../messages/clone-job.ts";
import type { SessionEvent } from "../messages/session-event.ts";
import type { Ports } from "../ports/index.ts";
import { assertActive, desktopRef, requirePool } from "./common.ts";
import { DomainError } from "./errors.ts";
import type { Pool, Session, SessionTimeouts, TimeoutReason } from "./model.ts";
import { mergeTimeouts, timeoutStep } from "./session-timeout-rules.ts";
import { logoff } from "./sessions.ts";

type CheckJob = Extract<CloneJob, { kind: "check-session-timeout" }>;
type SchedulePorts = Pick<Ports, "jobs" | "clock">;
type CheckPorts = Pick<
  Ports,
  "sessions" | "desktops" | "pools" | "jobs" | "clock" | "userDataJobs" | "metrics"
>;

/** The ids of a check, as logged. */
const idsOf = (job: CheckJob) => ({
  tenantId: job.tenantId,
  poolId: job.poolId,
  desktopId: job.desktopId,
  sessionId: job.sessionId,
  reason: job.reason,
});

/**
 * Sends the check of one reason's timeout, delayed until it is due (its warning, else its
 * deadline; a deadline beyond SQS's longest delay is reached in hops). Nothing when the pool sets
 * no such timeout.
 */
export async function scheduleTimeoutCheck(
  ports: SchedulePorts,
  settings: SessionTimeouts | undefined,
  session: Pick<Session, "tenantId" | "poolId" | "desktopId" | "sessionId" | "startedAt" | "timeoutWarning"> &
    Partial<Pick<Session, "disconnectedAt" | "idleSince">>,
  reason: TimeoutReason,
  since: string,
): Promise<boolean> {
  const step = timeoutStep({ settings, session, reason, since, nowMs: ports.clock.now().getTime() });
  if (step.action === "none") return false;
  const job: CheckJob = {
    kind: "check-session-timeout",
    tenantId: session.tenantId,
    poolId: session.poolId,
    desktopId: session.desktopId,
    sessionId: session.sessionId,
    reason,
    since,
  };
  await ports.jobs.send([job], step.action === "wait" ? { delaySeconds: step.delaySeconds } : {});
  return true;
}

/**
 * A disconnect, reconnect or idle report of the desktop agent. Stale ones (an ended session, one
 * that names another desktop, one older than a report already applied) change nothing.
 */
export async function sessionEventReceived(
  ports: Pick<Ports, "sessions" | "pools" | "jobs" | "clock">,
  event: SessionEvent,
): Promise<string> {
  const { detail } = event;
  const session = await ports.sessions.get(detail.tenantId, detail.sessionId);
  if (session?.state !== "ACTIVE" || session.desktopId !== detail.desktopId)
    return `ignored: ${detail.sessionId} is not active on ${detail.desktopId}`;
  const at = new Date(detail.at);
  const reportedAt = at.toISOString();
  let reason: TimeoutReason;
  let result: Awaited<ReturnType<Ports["sessions"]["recordActivity"]>>;
  switch (event["detail-type"]) {
    case "Session Disconnected":
      reason = "disconnect-timeout";
      result = await ports.sessions.recordActivity(session, {
        kind: "connection",
        reportedAt,
        disconnectedAt: reportedAt,
      });
      break;
    case "Session Reconnected":
      reason = "disconnect-timeout";
      result = await ports.sessions.recordActivity(session, {
        kind: "connection",
        reportedAt,
        disconnectedAt: null,
      });
      break;
    case "Session Idle": {
      reason = "idle-timeout";
      const idleSeconds = event.detail.idleSeconds;
      const idleSince = idleSeconds > 0 ? new Date(at.getTime() - idleSeconds * 1000).toISOString() : null;
      result = await ports.sessions.recordActivity(session, { kind: "idle", reportedAt, idleSince });
      break;
    }
  }
  if (!result.applied) return `stale: a later ${event["detail-type"]} report was applied`;
  // A spell that goes on has its check already; only the report that started it schedules one.
  if (!result.since || !result.started) return `recorded ${event["detail-type"]}`;
  const pool = await ports.pools.get(session.tenantId, session.poolId);
  const recorded =
    reason === "idle-timeout"
      ? { ...session, idleSince: result.since }
      : { ...session, disconnectedAt: result.since };
  const scheduled = await scheduleTimeoutCheck(ports, pool?.sessionTimeouts, recorded, reason, result.since);
  return `recorded ${event["detail-type"]}${scheduled ? `; ${reason} check scheduled` : ""}`;
}

/** How long a process trusts what it read of a pool's max lifetime (logons must stay cheap). */
export const lifetimeCacheMs = 10_000;
const lifetimes = new Map<string, { settings: Promise<SessionTimeouts | undefined>; readAtMs: number }>();

/** A new session: the check of its pool's maximum lifetime, if it has one. */
export async function sessionStarted(
  ports: Pick<Ports, "pools" | "jobs" | "clock">,
  session: Session,
): Promise<void> {
  const key = `${session.tenantId}/${session.poolId}`;
  const nowMs = ports.clock.now().getTime();
  let known = lifetimes.get(key);
  if (!known || nowMs - known.readAtMs > lifetimeCacheMs) {
    // One read for the sessions that start together (a page of served tickets): they share it.
    const read = ports.pools.get(session.tenantId, session.poolId).then((pool) => pool?.sessionTimeouts);
    if (lifetimes.size > 10_000) lifetimes.clear();
    const entry = { settings: read, readAtMs: nowMs };
    lifetimes.set(key, entry);
    read.catch(() => lifetimes.get(key) === entry && lifetimes.delete(key));
    known = entry;
  }
  const settings = await known.settings;
  if (settings?.maxLifetimeSeconds === undefined) return;
  await scheduleTimeoutCheck(ports, settings, session, "max-lifetime", session.startedAt);
}

/**
 * The delayed check of one session's timeout. It re-reads the session and its pool: a session
 * that ended, reconnected, became active or whose pool dropped the setting is left alone; one
 * whose warning is due is warned (once per deadline); one past its deadline is logged off.
 */
export async function checkSessionTimeout(ports: CheckPorts, job: CheckJob): Promise<string> {
  const session = await ports.sessions.get(job.tenantId, job.sessionId);
  if (session?.state !== "ACTIVE" || session.desktopId !== job.desktopId)
    return `skipped: session ${job.sessionId} is no longer active`;
  const pool = await ports.pools.get(job.tenantId, job.poolId);
  const settings = pool?.sessionTimeouts;
  // One instant for the decision and what is recorded of it.
  const now = ports.clock.now();
  const step = timeoutStep({ settings, session, reason: job.reason, since: job.since, nowMs: now.getTime() });
  switch (step.action) {
    case "none":
      return `nothing to do: ${step.why}`;
    case "wait":
      await ports.jobs.send([job], { delaySeconds: step.delaySeconds });
      return `not yet: checks again in ${step.delaySeconds} s`;
    case "warn": {
      const warning = {
        reason: job.reason,
        logoffAt: step.logoffAt,
        warnedAt: now.toISOString(),
      };
      // The user hears it first (a VM desktop's agent, through its host); a lost record only repeats it.
      const desktop = await ports.desktops.get(job.tenantId, job.poolId, job.desktopId);
      if (desktop?.console)
        await ports.jobs.send([
          { kind: "warn-session", ...desktopRef(desktop), sessionId: job.sessionId, ...warning },
        ]);
      await ports.sessions.recordTimeoutWarning(session, warning);
      await ports.jobs.send([job], { delaySeconds: step.delaySeconds });
      logger.info("session timeout warning", { ...idsOf(job), logoffAt: step.logoffAt });
      return `warned: logoff at ${step.logoffAt}`;
    }
    case "logoff": {
      const ended = await logoff(ports, job.tenantId, job.sessionId, job.reason);
      if (ended.endedBy !== job.reason) return `skipped: session ended by ${ended.endedBy ?? "nothing"}`;
      ports.metrics.record(job.tenantId, "sessionsTimedOut", 1);
      logger.info("session timed out", { ...idsOf(job), endedAt: ended.endedAt });
      return `logged off: ${job.reason}`;
    }
  }
}

export type TimeoutsPatch = { [K in keyof SessionTimeouts]?: number | null };

/**
 * `PATCH /v1/pools/{id}` `sessionTimeouts`: merged into the pool's (null clears one). Sessions
 * already running get their checks now, and once more after every process's cached view of the
 * pool has expired (a session started meanwhile may have been given the old settings).
 */
export async function setSessionTimeouts(
  ports: Pick<Ports, "pools" | "desktops" | "jobs" | "clock">,
  tenantId: string,
  poolId: string,
  patch: TimeoutsPatch,
): Promise<Pool> {
  const pool = await requirePool(ports, tenantId, poolId);
  assertActive(pool);
  const sessionTimeouts = mergeTimeouts(pool.sessionTimeouts, patch);
  if (!(await ports.pools.setSessionTimeouts(tenantId, poolId, sessionTimeouts)))
    throw new DomainError("poolChanged", `pool ${poolId} changed during the update; retry`);
  const { sessionTimeouts: _old, ...rest } = pool;
  const updated: Pool = { ...rest, ...(sessionTimeouts ? { sessionTimeouts } : {}) };
  await scheduleRunningSessions(ports, updated);
  await ports.jobs.send([{ kind: "schedule-session-timeouts", tenantId, poolId }], {
    delaySeconds: Math.ceil(lifetimeCacheMs / 1000) + 1,
  });
  return updated;
}

/** Every running session of the pool gets the checks its pool's timeouts call for. */
export async function scheduleRunningSessions(
  ports: Pick<Ports, "desktops" | "jobs" | "clock">,
  pool: Pick<Pool, "tenantId" | "poolId" | "sessionTimeouts">,
): Promise<number> {
  const settings = pool.sessionTimeouts;
  if (!settings) return 0;
  let scheduled = 0;
  for (const d of await ports.desktops.list(pool.tenantId, pool.poolId)) {
    if (d.state !== "ASSIGNED" || !d.sessionId) continue;
    const session = {
      tenantId: d.tenantId,
      poolId: d.poolId,
      desktopId: d.desktopId,
      sessionId: d.sessionId,
      startedAt: d.sessionStartedAt ?? d.updatedAt,
      ...(d.disconnectedAt ? { disconnectedAt: d.disconnectedAt } : {}),
      ...(d.idleSince ? { idleSince: d.idleSince } : {}),
      ...(d.timeoutWarning ? { timeoutWarning: d.timeoutWarning } : {}),
    };
    const spells: [TimeoutReason, string | undefined][] = [
      ["disconnect-timeout", session.disconnectedAt],
      ["idle-timeout", session.idleSince],
      ["max-lifetime", session.startedAt],
    ];
    for (const [reason, since] of spells)
      if (since && (await scheduleTimeoutCheck(ports, settings, session, reason, since))) scheduled++;
  }
  return scheduled;
}

/** The delayed second round of a settings change (see setSessionTimeouts). */
export async function scheduleSessionTimeouts(
  ports: Pick<Ports, "pools" | "desktops" | "jobs" | "clock">,
  job: { tenantId: string; poolId: string },
): Promise<string> {
  const pool = await ports.pools.get(job.tenantId, job.poolId);
  if (pool?.state !== "ACTIVE") return "skipped: pool is not active";
  return `${await scheduleRunningSessions(ports, pool)} checks scheduled`;
}
