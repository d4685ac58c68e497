/**
 * Pools that size themselves: spare desktops provisioned ahead, idle ones removed (never below
 * minSize), and logons beyond the free desktops queued with tickets that are served strictly in
 * the order they were made. A local region without VMs (desktops are disks).
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expectStatus, useTenantRegion, waitFor, waitForCounts } from "./harness.ts";

const fx = useTenantRegion({ image: { blankSizeMiB: 64 } });

const api = (method: string, path: string, body?: unknown) =>
  fx.r.api(method, path, { key: fx.tenant.key, ...(body === undefined ? {} : { body }) });

async function newPool(body: Record<string, unknown>) {
  return expectStatus(await api("POST", "/v1/pools", { name: "auto", imageId: fx.imageId, ...body }), 201);
}

const poolOf = async (poolId: string) => expectStatus(await api("GET", `/v1/pools/${poolId}`), 200);

async function waitForPool(poolId: string, want: { size?: number; AVAILABLE?: number; ASSIGNED?: number }) {
  await waitFor(
    `pool ${poolId} at ${JSON.stringify(want)}`,
    async () => {
      const p = await poolOf(poolId);
      return Object.entries(want).every(([k, n]) =>
        k === "size" ? p.size === n : p.desktopCounts[k] === n && p.desktopCounts.PROVISIONING === 0,
      );
    },
    90_000,
  );
}

const logon = (poolId: string, userId: string) => api("POST", `/v1/pools/${poolId}/logons`, { userId });

describe("pools that size themselves", () => {
  it("keeps `spare` desktops free after each logon, and removes idle free ones beyond it, never below minSize", async () => {
    const pool = await newPool({ minSize: 2, maxSize: 10, spare: 3, idleSeconds: 1 });
    expect(pool).toMatchObject({ size: 3, minSize: 2, maxSize: 10, spare: 3 });
    await waitForCounts(fx.r, fx.tenant.key, pool.poolId, { AVAILABLE: 3 });

    const sessions: string[] = [];
    for (const userId of ["ann", "ben", "cid"]) {
      sessions.push(expectStatus(await logon(pool.poolId, userId), 200).sessionId);
      // Shortly after each logon, three are free again.
      await waitForPool(pool.poolId, { size: 3 + sessions.length, AVAILABLE: 3, ASSIGNED: sessions.length });
    }
    for (const id of sessions) expectStatus(await api("POST", `/v1/sessions/${id}/logoff`), 200);
    // Six free, three needed: the idle ones beyond the spare go.
    await waitForPool(pool.poolId, { size: 3, AVAILABLE: 3 });

    // With no spare, the pool keeps its minimum, not less.
    expectStatus(await api("PATCH", `/v1/pools/${pool.poolId}`, { spare: 0 }), 200);
    await waitForPool(pool.poolId, { size: 2, AVAILABLE: 2 });
    expect((await poolOf(pool.poolId)).desktopCounts.DELETING).toBe(0);
  });

  it("a storm of 30 on minSize 5, maxSize 30, spare 2: all served, the queued ones in ticket order; the 31st gets 503", async () => {
    const pool = await newPool({ minSize: 5, maxSize: 30, spare: 2, ticketTimeoutSeconds: 300 });
    await waitForCounts(fx.r, fx.tenant.key, pool.poolId, { AVAILABLE: 5 });
    const answers = [];
    // One after the other, so that the order of arrival is known.
    for (let i = 0; i < 30; i++) answers.push(await logon(pool.poolId, `u${i}`));
    const served = answers.filter((a) => a.status === 200);
    const queued = answers.filter((a) => a.status === 202).map((a) => a.body);
    expect(served.length + queued.length).toBe(30);
    expect(served.length).toBeGreaterThanOrEqual(5);
    expect(queued.length).toBeGreaterThan(0);
    expect(queued.every((t) => t.state === "WAITING")).toBe(true);
    // Tickets are ordered as the users arrived.
    const ids = queued.map((t) => t.ticketId);
    expect([...ids].sort()).toEqual(ids);

    // The same user asking again gets the same ticket.
    const again = await logon(pool.poolId, queued[0].userId);
    if (again.status === 202) expect(again.body.ticketId).toBe(queued[0].ticketId);
    else expect(again.status).toBe(200);

    // The 31st: 30 users are on or waiting, the pool cannot grow past 30.
    const full = await logon(pool.poolId, "u30");
    expect(full.status).toBe(503);
    expect(full.headers.get("retry-after")).toBeTruthy();

    const final: any[] = [];
    await waitFor(
      "every ticket served",
      async () => {
        final.length = 0;
        for (const t of queued)
          final.push(expectStatus(await api("GET", `/v1/pools/${pool.poolId}/logons/${t.ticketId}`), 200));
        return final.every((t) => t.state === "SERVED");
      },
      240_000,
    );
    // First come, first served: in ticket order, each was served no earlier than the one before.
    const servedAt = final.map((t) => Date.parse(t.servedAt));
    expect([...servedAt].sort((a, b) => a - b)).toEqual(servedAt);
    for (const t of final) {
      const session = expectStatus(await api("GET", `/v1/sessions/${t.sessionId}`), 200);
      expect(session).toMatchObject({ state: "ACTIVE", userId: t.userId, poolId: pool.poolId });
    }
    const after = await poolOf(pool.poolId);
    expect(after.size).toBe(30);
    expect(after.desktopCounts.ASSIGNED).toBe(30);
    // Thirty users on thirty distinct desktops.
    const desktops = new Set(
      await Promise.all(
        final.map(async (t) => expectStatus(await api("GET", `/v1/sessions/${t.sessionId}`), 200).desktopId),
      ),
    );
    expect(desktops.size).toBe(final.length);
  }, 300_000);

  it("a ticket that cannot be served in time says it expired", async () => {
    // A datastore with no room: the pool cannot grow, so its one ticket waits and expires.
    const path = join(fx.r.dataDir, "datastores", "no-room");
    expectStatus(
      await fx.r.api("POST", "/v1/admin/datastores", {
        key: fx.r.operatorKey,
        body: { datastoreId: "no-room", path, capacityGiB: 0.001 },
      }),
      201,
    );
    const pool = await newPool({
      minSize: 0,
      maxSize: 2,
      spare: 0,
      ticketTimeoutSeconds: 1,
      datastoreIds: ["no-room"],
    });
    expect(pool.size).toBe(0);
    const ticket = await logon(pool.poolId, "late");
    expect(ticket.status).toBe(202);
    expect(ticket.headers.get("location")).toBe(`/v1/pools/${pool.poolId}/logons/${ticket.body.ticketId}`);
    expect(ticket.body).toMatchObject({ state: "WAITING", position: 0 });
    // The next user in line has one ahead; asking again keeps one's own ticket and place.
    expect((await logon(pool.poolId, "later")).body).toMatchObject({ state: "WAITING", position: 1 });
    expect((await logon(pool.poolId, "late")).body).toMatchObject({
      ticketId: ticket.body.ticketId,
      position: 0,
    });
    await waitFor("the ticket expired", async () => {
      const t = await api("GET", `/v1/pools/${pool.poolId}/logons/${ticket.body.ticketId}`);
      return t.body.state === "EXPIRED";
    });
    // Asking again after it expired gives a new ticket.
    const next = await logon(pool.poolId, "late");
    expect(next.status).toBe(202);
    expect(next.body.ticketId).not.toBe(ticket.body.ticketId);
    expect((await api("GET", `/v1/pools/${pool.poolId}/logons/tkt-nothere`)).status).toBe(404);
  });

  it("bad sizing is refused naming the field, and creates or changes nothing", async () => {
    const before = expectStatus(await api("GET", "/v1/pools"), 200).items.length;
    for (const [body, field] of [
      [{ minSize: 5, maxSize: 3 }, "body.minSize"],
      [{ maxSize: 3, spare: 4 }, "body.spare"],
      [{ size: 2, maxSize: 3 }, "body.size"],
      [{ minSize: 2 }, "body.maxSize"],
      [{ maxSize: 3, assignment: "dedicated" }, "body.maxSize"],
    ] as const) {
      const res = await api("POST", "/v1/pools", { name: "bad", imageId: fx.imageId, ...body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.field).toBe(field);
    }
    expect(expectStatus(await api("GET", "/v1/pools"), 200).items.length).toBe(before);
    const pool = await newPool({ minSize: 1, maxSize: 4, spare: 1 });
    const bad = await api("PATCH", `/v1/pools/${pool.poolId}`, { minSize: 9 });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe("body.minSize");
    expect(await poolOf(pool.poolId)).toMatchObject({ minSize: 1, maxSize: 4, spare: 1 });
    // `size` makes it a fixed pool.
    const fixed = expectStatus(await api("PATCH", `/v1/pools/${pool.poolId}`, { size: 2 }), 200);
    expect(fixed.maxSize).toBeUndefined();
    await waitForPool(pool.poolId, { size: 2, AVAILABLE: 2 });
  });
});
