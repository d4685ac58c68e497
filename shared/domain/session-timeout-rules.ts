/**
 * The pure decisions of session timeouts: when a session's deadline for a reason falls, and what a
 * check that wakes up at a given moment must do about it. No I/O: unit-tested on their own.
 */
import type { Session, SessionTimeouts, TimeoutReason } from "./model.ts";

/** How long before a timeout the session is warned, when its pool does not say. */
export const defaultWarningSeconds = 60;
/** SQS delays a message by at most this much: a check further out is re-scheduled on waking. */
export const maxCheckDelaySeconds = 900;

type Activity = Pick<Session, "startedAt" | "disconnectedAt" | "idleSince">;

/** What a reason's clock starts from (undefined: the session is not disconnected, or not idle). */
export function timeoutSince(session: Activity, reason: TimeoutReason): string | undefined {
  switch (reason) {
    case "disconnect-timeout":
      return session.disconnectedAt;
    case "idle-timeout":
      return session.idleSince;
    case "max-lifetime":
      return session.startedAt;
  }
}

export function timeoutSeconds(settings: SessionTimeouts | undefined, reason: TimeoutReason) {
  switch (reason) {
    case "disconnect-timeout":
      return settings?.disconnectSeconds;
    case "idle-timeout":
      return settings?.idleSeconds;
    case "max-lifetime":
      return settings?.maxLifetimeSeconds;
  }
}

/** When the session is logged off for this reason (epoch ms), if the pool sets it and it applies. */
export function timeoutDeadline(
  settings: SessionTimeouts | undefined,
  session: Activity,
  reason: TimeoutReason,
): { since: string; deadlineMs: number } | undefined {
  const seconds = timeoutSeconds(settings, reason);
  const since = timeoutSince(session, reason);
  if (seconds === undefined || since === undefined) return undefined;
  const sinceMs = Date.parse(since);
  if (!Number.isFinite(sinceMs)) return undefined;
  return { since, deadlineMs: sinceMs + seconds * 1000 };
}

export type TimeoutStep =
  | { action: "none"; why: string }
  | { action: "wait"; delaySeconds: number }
  | { action: "warn"; logoffAt: string; delaySeconds: number }
  | { action: "logoff" };

/**
 * What a check does now. `since` is the moment the check was scheduled for: a check for an earlier
 * disconnect (or idle spell) than the session's current one stops, since the current one has its
 * own check. A session is never logged off unwarned: the warning comes `warningSeconds` before the
 * deadline, or, when a check finds the deadline passed unwarned (a timeout set on a running pool),
 * now, with the logoff `warningSeconds` later. A warning of this reason for this deadline or a later
 * one counts (once per deadline), and its `logoffAt` is kept.
 */
export function timeoutStep(input: {
  settings: SessionTimeouts | undefined;
  session: Activity & Pick<Session, "timeoutWarning">;
  reason: TimeoutReason;
  since: string;
  nowMs: number;
}): TimeoutStep {
  const { settings, session, reason, nowMs } = input;
  const deadline = timeoutDeadline(settings, session, reason);
  if (!deadline)
    return {
      action: "none",
      why:
        timeoutSeconds(settings, reason) === undefined
          ? `the pool sets no ${reason}`
          : `the session is no longer ${reason === "idle-timeout" ? "idle" : "disconnected"}`,
    };
  if (deadline.since !== input.since) return { action: "none", why: "a later report has its own check" };
  const warning = session.timeoutWarning;
  const warnedLogoffMs =
    warning?.reason === reason && Date.parse(warning.logoffAt) >= deadline.deadlineMs
      ? Date.parse(warning.logoffAt)
      : undefined;
  if (warnedLogoffMs !== undefined)
    return nowMs >= warnedLogoffMs
      ? { action: "logoff" }
      : { action: "wait", delaySeconds: delayUntil(nowMs, warnedLogoffMs) };
  const warningMs = (settings?.warningSeconds ?? defaultWarningSeconds) * 1000;
  const warnAtMs = deadline.deadlineMs - warningMs;
  if (nowMs < warnAtMs) return { action: "wait", delaySeconds: delayUntil(nowMs, warnAtMs) };
  const logoffMs = Math.max(deadline.deadlineMs, nowMs + warningMs);
  return {
    action: "warn",
    logoffAt: new Date(logoffMs).toISOString(),
    delaySeconds: delayUntil(nowMs, logoffMs),
  };
}

/** Whole seconds until `atMs` (at least 1: SQS rounds nothing up), capped by SQS's longest delay. */
export function delayUntil(nowMs: number, atMs: number): number {
  return Math.min(maxCheckDelaySeconds, Math.max(1, Math.ceil((atMs - nowMs) / 1000)));
}

/** Merges a PATCH of timeouts (null clears one) into the pool's; undefined when none is left. */
export function mergeTimeouts(
  current: SessionTimeouts | undefined,
  patch: { [K in keyof SessionTimeouts]?: number | null },
): SessionTimeouts | undefined {
  const merged: Record<string, number> = { ...current };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete merged[k];
    else if (v !== undefined) merged[k] = v;
  }
  return Object.keys(merged).length > 0 ? (merged as SessionTimeouts) : undefined;
}
