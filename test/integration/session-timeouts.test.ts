/**
 * Session timeouts (issue 11.3) on a region without VMs: the desktop agent's disconnect, reconnect
 * and idle reports arrive through the local event stand-in; delayed checks on the clone-jobs queue
 * warn, then log off. Timeouts are in seconds, so a few seconds make each case.
 */
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import { expectStatus, readyPool, useTenantRegion, waitFor, waitForCounts } from "./harness.ts";

const fx = useTenantRegion({ image: { blankSizeMiB: 64 } });

const key = () => fx.tenant.key;
const logon = async (poolId: string, userId: string) =>
  expectStatus(await fx.r.api("POST", `/v1/pools/${poolId}/logons`, { key: key(), body: { userId } }), 200);
const getSession = async (sessionId: string) =>
  expectStatus(await fx.r.api("GET", `/v1/sessions/${sessionId}`, { key: key() }), 200);

type EventType = "Session Disconnected" | "Session Reconnected" | "Session Idle";
/** What a desktop agent's host puts on the bus, posted to the local EventBridge stand-in. */
async function agentSays(
  session: { sessionId: string; desktopId: string },
  type: EventType,
  at: Date,
  extra: Record<string, unknown> = {},
) {
  const res = await postEvent({
    source: "pristine.desktop",
    "detail-type": type,
    detail: {
      tenantId: fx.tenant.tenantId,
      sessionId: session.sessionId,
      desktopId: session.desktopId,
      at: at.toISOString(),
      ...extra,
    },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
}

/** The local stand-in for EventBridge PutEvents (not an API route: outside the OpenAPI contract). */
async function postEvent(event: unknown) {
  const res = await fetch(`${fx.r.region.apiUrl}/local/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${fx.r.operatorKey}`, "content-type": "application/json" },
    body: JSON.stringify(event),
  });
  return { status: res.status, body: (await res.json()) as any };
}

async function waitEnded(sessionId: string, timeoutMs = 30_000) {
  let session: any;
  await waitFor(
    `session ${sessionId} ENDED`,
    async () => {
      session = await getSession(sessionId);
      return session.state === "ENDED";
    },
    timeoutMs,
  );
  return session;
}

/** Every job on the clone-jobs queue done, the delayed ones (timeout checks) included. */
async function cloneJobsDone() {
  await waitFor(
    "clone-jobs queue empty, delayed messages included",
    async () => {
      const out = await fx.r.region.app.sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: fx.r.region.queues.cloneJobs.url,
          AttributeNames: ["All"],
        }),
      );
      const a = out.Attributes ?? {};
      const counts = [
        a.ApproximateNumberOfMessages,
        a.ApproximateNumberOfMessagesNotVisible,
        a.ApproximateNumberOfMessagesDelayed,
      ];
      return counts.every((n) => Number(n ?? 0) === 0);
    },
    30_000,
  );
}

/**
 * The ended session was warned of its reason `warningMs` or more before it ended, and never
 * before `deadlineMs` (nor more than a few seconds after: the checks are timely).
 */
function expectWarnedThenEnded(ended: any, reason: string, deadlineMs: number, warningMs: number) {
  expect(ended.endedBy).toBe(reason);
  expect(ended.timeoutWarning?.reason).toBe(reason);
  const warnedAt = Date.parse(ended.timeoutWarning.warnedAt);
  const logoffAt = Date.parse(ended.timeoutWarning.logoffAt);
  const endedAt = Date.parse(ended.endedAt);
  expect(logoffAt).toBeGreaterThanOrEqual(deadlineMs);
  expect(logoffAt - warnedAt).toBeGreaterThanOrEqual(warningMs);
  expect(endedAt).toBeGreaterThanOrEqual(logoffAt);
  expect(endedAt - deadlineMs).toBeLessThan(10_000);
}

async function desktopOf(poolId: string, desktopId: string) {
  const list = expectStatus(await fx.r.api("GET", `/v1/pools/${poolId}/desktops`, { key: key() }), 200);
  return list.items.find((d: any) => d.desktopId === desktopId);
}

describe("session timeouts", () => {
  let disconnectPool: string;

  it("logs off a session disconnected past its timeout, warned first, and refreshes its desktop", async () => {
    disconnectPool = await readyPool(fx.r, key(), fx.imageId, 2, {
      sessionTimeouts: { disconnectSeconds: 3, warningSeconds: 2 },
    });
    const pool = expectStatus(await fx.r.api("GET", `/v1/pools/${disconnectPool}`, { key: key() }), 200);
    expect(pool.sessionTimeouts).toEqual({ disconnectSeconds: 3, warningSeconds: 2 });

    const alice = await logon(disconnectPool, "alice");
    const before = await desktopOf(disconnectPool, alice.desktopId);
    const at = new Date();
    await agentSays(alice, "Session Disconnected", at);
    await waitFor("the disconnect recorded", async () => (await getSession(alice.sessionId)).disconnectedAt);
    expect((await getSession(alice.sessionId)).disconnectedAt).toBe(at.toISOString());

    const ended = await waitEnded(alice.sessionId);
    expect(ended.endedBy).toBe("disconnect-timeout");
    // Warned first (at the deadline less warningSeconds), then logged off at the deadline.
    expectWarnedThenEnded(ended, "disconnect-timeout", at.getTime() + 3000, 2000);

    // The desktop was refreshed: a new disk generation, pristine again, free for the next user.
    let after: any;
    await waitFor("the desktop refreshed", async () => {
      after = await desktopOf(disconnectPool, alice.desktopId);
      return after?.state === "AVAILABLE" && after.generation > before.generation;
    });
    expect(Date.parse(after.pristineAt)).toBeGreaterThan(Date.parse(before.pristineAt));
    expect(after.disconnectedAt).toBeUndefined();
    expect(after.sessionId).toBeUndefined();

    await waitFor("the timeout counted", async () => {
      const body = expectStatus(await fx.r.api("GET", "/v1/metrics?minutes=10", { key: key() }), 200);
      const series = body.series.find((s: any) => s.name === "sessionsTimedOut");
      return series.points.reduce((n: number, p: any) => n + p.count, 0) === 1;
    });
  });

  it("leaves alone a session that reconnected before its deadline, whatever order the events come in", async () => {
    await waitForCounts(fx.r, key(), disconnectPool, { AVAILABLE: 2 });
    const bob = await logon(disconnectPool, "bob");
    const carol = await logon(disconnectPool, "carol");
    const t = Date.now();
    await agentSays(bob, "Session Disconnected", new Date(t));
    await agentSays(carol, "Session Disconnected", new Date(t));
    await agentSays(bob, "Session Reconnected", new Date(t + 200));
    // A late copy of an older disconnect, delivered after the reconnect, changes nothing.
    await agentSays(bob, "Session Disconnected", new Date(t + 100));

    const ended = await waitEnded(carol.sessionId);
    expect(ended.endedBy).toBe("disconnect-timeout");
    // Bob's check came due with carol's; once every check has run, bob is still in his session.
    await cloneJobsDone();
    const stillOn = await getSession(bob.sessionId);
    expect(stillOn.state).toBe("ACTIVE");
    expect(stillOn.disconnectedAt).toBeUndefined();
    expect(stillOn.timeoutWarning).toBeUndefined();
  });

  it("PATCH sets timeouts on a running pool (its sessions get them at once) and null clears them", async () => {
    const [bob] = (
      expectStatus(await fx.r.api("GET", `/v1/pools/${disconnectPool}/desktops`, { key: key() }), 200)
        .items as any[]
    ).filter((d) => d.userId === "bob");
    const patched = expectStatus(
      await fx.r.api("PATCH", `/v1/pools/${disconnectPool}`, {
        key: key(),
        body: { sessionTimeouts: { maxLifetimeSeconds: 2, warningSeconds: 1 } },
      }),
      200,
    );
    expect(patched.sessionTimeouts).toEqual({
      disconnectSeconds: 3,
      warningSeconds: 1,
      maxLifetimeSeconds: 2,
    });
    // Bob's session is older than 2 s already: warned at once, it ends a warning later.
    const ended = await waitEnded(bob.sessionId);
    expect(ended.endedBy).toBe("max-lifetime");
    expectWarnedThenEnded(ended, "max-lifetime", Date.parse(bob.sessionStartedAt) + 2000, 1000);

    const cleared = expectStatus(
      await fx.r.api("PATCH", `/v1/pools/${disconnectPool}`, {
        key: key(),
        body: {
          sessionTimeouts: { maxLifetimeSeconds: null, disconnectSeconds: null, warningSeconds: null },
        },
      }),
      200,
    );
    expect(cleared.sessionTimeouts).toBeUndefined();
    expect(
      expectStatus(await fx.r.api("GET", `/v1/pools/${disconnectPool}`, { key: key() }), 200).sessionTimeouts,
    ).toBeUndefined();
  });

  it("ends a session past its pool's maximum lifetime, warned first", async () => {
    const poolId = await readyPool(fx.r, key(), fx.imageId, 1, {
      sessionTimeouts: { maxLifetimeSeconds: 3, warningSeconds: 2 },
    });
    const dave = await logon(poolId, "dave");
    const ended = await waitEnded(dave.sessionId);
    expect(ended.endedBy).toBe("max-lifetime");
    expectWarnedThenEnded(ended, "max-lifetime", Date.parse(dave.startedAt) + 3000, 2000);
  });

  it("logs off a session idle past its timeout; activity before resets the idle clock", async () => {
    const poolId = await readyPool(fx.r, key(), fx.imageId, 1, {
      sessionTimeouts: { idleSeconds: 4, warningSeconds: 1 },
    });
    const erin = await logon(poolId, "erin");
    const t = Date.now();
    // Idle for 3 s, then active again: no idle spell is left to time out.
    await agentSays(erin, "Session Idle", new Date(t), { idleSeconds: 3 });
    await agentSays(erin, "Session Idle", new Date(t + 10), { idleSeconds: 0 });
    await waitFor("the activity recorded", async () => {
      const d = await desktopOf(poolId, erin.desktopId);
      return d.idleReportedAt === new Date(t + 10).toISOString();
    });
    expect((await getSession(erin.sessionId)).idleSince).toBeUndefined();
    // Idle again, for 2 s already: logged off 2 s later.
    await agentSays(erin, "Session Idle", new Date(t + 20), { idleSeconds: 2 });
    const ended = await waitEnded(erin.sessionId);
    expect(ended.endedBy).toBe("idle-timeout");
    expect(ended.idleSince).toBe(new Date(t + 20 - 2000).toISOString());
    expectWarnedThenEnded(ended, "idle-timeout", t + 20 - 2000 + 4000, 1000);
  });

  it("refuses bad timeouts and bad reports with a 400 naming the field, changing nothing", async () => {
    const pools = async () => expectStatus(await fx.r.api("GET", "/v1/pools", { key: key() }), 200).items;
    const before = await pools();
    const create = (sessionTimeouts: unknown) =>
      fx.r.api("POST", "/v1/pools", {
        key: key(),
        body: { name: "bad", imageId: fx.imageId, size: 1, sessionTimeouts },
      });
    for (const [settings, field] of [
      [{ disconnectSeconds: 0 }, "body.sessionTimeouts.disconnectSeconds"],
      [{ idleSeconds: 1.5 }, "body.sessionTimeouts.idleSeconds"],
      [{ maxLifetimeSeconds: 31 * 86_400 }, "body.sessionTimeouts.maxLifetimeSeconds"],
      [{ warningSeconds: -1 }, "body.sessionTimeouts.warningSeconds"],
      [{ disconnectMinutes: 5 }, "body.sessionTimeouts"],
    ] as const) {
      const res = await create(settings);
      expect(res.status, JSON.stringify(settings)).toBe(400);
      expect(res.body.field, JSON.stringify(settings)).toBe(field);
    }
    const patch = (body: unknown) => fx.r.api("PATCH", `/v1/pools/${disconnectPool}`, { key: key(), body });
    const badPatch = await patch({ sessionTimeouts: { idleSeconds: "soon" } });
    expect(badPatch.status).toBe(400);
    expect(badPatch.body.field).toBe("body.sessionTimeouts.idleSeconds");
    expect(await pools()).toEqual(before);
    // An empty PATCH is no change: the pool as it is.
    const same = expectStatus(await patch({}), 200);
    expect(same).toEqual(before.find((p: any) => p.poolId === disconnectPool));

    const session = { sessionId: "ses-x.pool-x.dsk-x", desktopId: "dsk-x" };
    const res = await postEvent({
      source: "pristine.desktop",
      "detail-type": "Session Idle",
      detail: { tenantId: fx.tenant.tenantId, ...session, at: new Date().toISOString(), idleSeconds: -5 },
    });
    expect(res.status).toBe(400);
    expect(res.body.field).toMatch(/^body/);
  });
});
