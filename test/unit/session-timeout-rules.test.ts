import { describe, expect, it } from "vitest";
import {
  delayUntil,
  maxCheckDelaySeconds,
  mergeTimeouts,
  timeoutDeadline,
  timeoutStep,
} from "../../shared/domain/session-timeout-rules.ts";
import { desktopEventSchema, sessionEvent, sessionEventSchema } from "../../shared/messages/session-event.ts";

const t0 = Date.parse("2026-11-30T10:00:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();
const session = { startedAt: iso(t0), disconnectedAt: iso(t0 + 60_000) };

describe("session timeout deadlines", () => {
  it("count each reason from its own start, only where the pool sets it", () => {
    const settings = { disconnectSeconds: 300, maxLifetimeSeconds: 3600 };
    expect(timeoutDeadline(settings, session, "disconnect-timeout")?.deadlineMs).toBe(t0 + 60_000 + 300_000);
    expect(timeoutDeadline(settings, session, "max-lifetime")?.deadlineMs).toBe(t0 + 3_600_000);
    // Not idle, and no idle timeout: nothing to enforce.
    expect(timeoutDeadline(settings, session, "idle-timeout")).toBeUndefined();
    expect(timeoutDeadline({ idleSeconds: 5 }, session, "idle-timeout")).toBeUndefined();
    expect(timeoutDeadline(undefined, session, "max-lifetime")).toBeUndefined();
  });

  it("wait for the warning, warn once, then log off at the deadline", () => {
    const settings = { disconnectSeconds: 300, warningSeconds: 30 };
    const since = session.disconnectedAt;
    const deadline = t0 + 60_000 + 300_000;
    const step = (nowMs: number, warned?: string) =>
      timeoutStep({
        settings,
        session: {
          ...session,
          ...(warned
            ? {
                timeoutWarning: {
                  reason: "disconnect-timeout" as const,
                  logoffAt: warned,
                  warnedAt: iso(nowMs),
                },
              }
            : {}),
        },
        reason: "disconnect-timeout",
        since,
        nowMs,
      });
    expect(step(t0 + 60_000)).toEqual({ action: "wait", delaySeconds: 270 });
    expect(step(deadline - 30_000)).toEqual({ action: "warn", logoffAt: iso(deadline), delaySeconds: 30 });
    // Warned for this deadline: it waits for the deadline instead of warning again.
    expect(step(deadline - 10_500, iso(deadline))).toEqual({ action: "wait", delaySeconds: 11 });
    // A warning of an earlier deadline (an earlier disconnect) does not count.
    expect(step(deadline - 10_000, iso(deadline - 1000)).action).toBe("warn");
    expect(step(deadline, iso(deadline))).toEqual({ action: "logoff" });
    expect(step(deadline + 5000, iso(deadline))).toEqual({ action: "logoff" });
    // A warning that announced a later logoff is kept to.
    expect(step(deadline + 5000, iso(deadline + 20_000))).toEqual({ action: "wait", delaySeconds: 15 });
  });

  it("never logs off unwarned: a deadline found passed is warned of, the logoff warningSeconds later", () => {
    const settings = { maxLifetimeSeconds: 60, warningSeconds: 30 };
    const nowMs = t0 + 600_000;
    expect(
      timeoutStep({ settings, session, reason: "max-lifetime", since: session.startedAt, nowMs }),
    ).toEqual({ action: "warn", logoffAt: iso(nowMs + 30_000), delaySeconds: 30 });
    const noWarning = { ...settings, warningSeconds: 0 };
    expect(
      timeoutStep({ settings: noWarning, session, reason: "max-lifetime", since: session.startedAt, nowMs }),
    ).toEqual({ action: "warn", logoffAt: iso(nowMs), delaySeconds: 1 });
  });

  it("defaults the warning to 60 s and hops deadlines further than SQS can delay", () => {
    const step = timeoutStep({
      settings: { maxLifetimeSeconds: 8 * 3600 },
      session,
      reason: "max-lifetime",
      since: session.startedAt,
      nowMs: t0,
    });
    expect(step).toEqual({ action: "wait", delaySeconds: maxCheckDelaySeconds });
    const late = timeoutStep({
      settings: { maxLifetimeSeconds: 8 * 3600 },
      session,
      reason: "max-lifetime",
      since: session.startedAt,
      nowMs: t0 + 8 * 3600_000 - 61_000,
    });
    expect(late).toEqual({ action: "wait", delaySeconds: 1 });
  });

  it("stops a check when the user reconnected, or a later disconnect has its own check", () => {
    const base = {
      settings: { disconnectSeconds: 60 },
      reason: "disconnect-timeout" as const,
      nowMs: t0 + 10 ** 6,
    };
    expect(
      timeoutStep({ ...base, session: { startedAt: session.startedAt }, since: session.disconnectedAt }),
    ).toMatchObject({ action: "none", why: "the session is no longer disconnected" });
    expect(timeoutStep({ ...base, session, since: iso(t0) })).toMatchObject({ action: "none" });
    expect(timeoutStep({ ...base, settings: {}, session, since: session.disconnectedAt })).toMatchObject({
      action: "none",
      why: "the pool sets no disconnect-timeout",
    });
  });

  it("delays by whole seconds, at least one and at most SQS's limit", () => {
    expect(delayUntil(t0, t0 - 5000)).toBe(1);
    expect(delayUntil(t0, t0 + 1001)).toBe(2);
    expect(delayUntil(t0, t0 + 10 ** 9)).toBe(900);
  });

  it("merges a PATCH: a value replaces, null clears, nothing left is none", () => {
    expect(
      mergeTimeouts({ idleSeconds: 60, warningSeconds: 10 }, { disconnectSeconds: 5, warningSeconds: null }),
    ).toEqual({ idleSeconds: 60, disconnectSeconds: 5 });
    expect(mergeTimeouts({ idleSeconds: 60 }, { idleSeconds: null })).toBeUndefined();
    expect(mergeTimeouts(undefined, {})).toBeUndefined();
  });
});

describe("session events", () => {
  const detail = { tenantId: "t", sessionId: "s", desktopId: "d", at: "2026-11-30T10:00:00Z" };
  it("carry the agent's reports in the logoff event's envelope", () => {
    const idle = sessionEvent("Session Idle", { ...detail, idleSeconds: 120 });
    expect(sessionEventSchema.parse(JSON.parse(JSON.stringify(idle)))).toEqual(idle);
    expect(desktopEventSchema.parse(sessionEvent("Session Disconnected", detail))["detail-type"]).toBe(
      "Session Disconnected",
    );
    expect(desktopEventSchema.safeParse({ ...idle, detail: { ...detail, idleSeconds: -1 } }).success).toBe(
      false,
    );
    expect(desktopEventSchema.safeParse({ ...idle, detail }).success).toBe(false);
    expect(desktopEventSchema.safeParse({ ...idle, "detail-type": "Session Away" }).success).toBe(false);
  });
});
