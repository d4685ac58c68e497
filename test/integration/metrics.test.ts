import { describe, expect, it } from "vitest";
import { reconcile } from "../../shared/domain/reconcile.ts";
import { expectStatus, newTenant, useTenantRegion, waitFor, waitForCounts } from "./harness.ts";

const fx = useTenantRegion({ poolSize: 2 });

interface Series {
  name: string;
  unit: string;
  poolId?: string;
  points: { t: string; count: number; sum: number }[];
}
/** The value of a gauge series: its latest step's (sum / count). */
const latest = (s: Series | undefined) => {
  const p = s?.points.filter((x) => x.count > 0).at(-1);
  return p ? p.sum / p.count : undefined;
};

/** Waits for a pool's gauges to read `free` free desktops, all powered on (no VMs here); its series. */
async function waitForGauges(poolId: string, free: number) {
  let gauges: Series[] = [];
  await waitFor(
    `pool ${poolId}'s gauges at ${free} free`,
    async () => {
      const body = expectStatus(await fx.r.api("GET", "/v1/metrics?minutes=10", { key: fx.tenant.key }), 200);
      gauges = (body.series as Series[]).filter((s) => s.poolId === poolId);
      const of = (name: string) => latest(gauges.find((s) => s.name === name));
      return of("freeDesktops") === free && of("poweredOnFreeDesktops") === free;
    },
    30_000,
  );
  return gauges;
}

const totals = async (key: string) => {
  const body = expectStatus(await fx.r.api("GET", "/v1/metrics?minutes=10", { key }), 200);
  return Object.fromEntries(
    (body.series as Series[]).map((s) => [
      s.name,
      {
        count: s.points.reduce((n, p) => n + p.count, 0),
        sum: s.points.reduce((n, p) => n + p.sum, 0),
      },
    ]),
  );
};

describe("metrics: the figures the functions record, read back as series", () => {
  it("counts served and refused logons, their latency, provisioning and refresh, for this tenant only", async () => {
    const { key } = fx.tenant;
    const logon = (userId: string) =>
      fx.r.api("POST", `/v1/pools/${fx.poolId}/logons`, { key, body: { userId } });
    const alice = expectStatus(await logon("alice"), 200);
    expectStatus(await logon("bob"), 200);
    expect((await logon("carol")).status).toBe(503);
    expectStatus(await fx.r.api("POST", `/v1/sessions/${alice.sessionId}/logoff`, { key }), 200);
    await waitForCounts(fx.r, key, fx.poolId, { AVAILABLE: 1, ASSIGNED: 1 });

    let seen: Awaited<ReturnType<typeof totals>> = {};
    await waitFor(
      "the figures written",
      async () => {
        seen = await totals(key);
        return seen.refreshSeconds?.count === 1 && seen.logonLatencyMs?.count === 3;
      },
      20_000,
    );
    expect(seen.logonsServed?.count).toBe(2);
    expect(seen.logonsRefused?.count).toBe(1);
    expect(seen.provisionSeconds?.count).toBe(2);
    expect(seen.logonLatencyMs?.sum).toBeGreaterThan(0);
    expect(seen.bootSeconds?.count).toBe(0); // no VMs in this region

    const other = await newTenant(fx.r, "other");
    const theirs = await totals(other.key);
    expect(Object.values(theirs).every((t) => t.count === 0)).toBe(true);
  });

  it("keeps a self-sizing pool's free and powered-on free desktops as gauges, one series per pool", async () => {
    const { key } = fx.tenant;
    const pool = expectStatus(
      await fx.r.api("POST", "/v1/pools", {
        key,
        body: { name: "gauged", imageId: fx.imageId, minSize: 1, maxSize: 4, spare: 2 },
      }),
      201,
    );
    await waitForCounts(fx.r, key, pool.poolId, { AVAILABLE: 2 });
    expectStatus(
      await fx.r.api("POST", `/v1/pools/${pool.poolId}/logons`, { key, body: { userId: "gia" } }),
      200,
    );
    // One on, two spare: the sizer grows the pool to three and counts two free (no VMs here, so
    // every AVAILABLE one counts as powered on).
    await waitForCounts(fx.r, key, pool.poolId, { AVAILABLE: 2, ASSIGNED: 1 });
    const gauges = await waitForGauges(pool.poolId, 2);
    expect(gauges.map((s) => s.name).sort()).toEqual(["freeDesktops", "poweredOnFreeDesktops"]);
    for (const s of gauges) expect(s.unit).toBe("Count");
  });

  it("keeps a fixed pool's gauges at the reconciler's recount", async () => {
    const pool = expectStatus(await fx.r.api("GET", `/v1/pools/${fx.poolId}`, { key: fx.tenant.key }), 200);
    const free = (pool.desktopCounts.AVAILABLE ?? 0) + (pool.desktopCounts.STOPPED ?? 0);
    // Its recount's turn now (it reads every pool's desktops), not once per stale period.
    await reconcile(fx.r.region.app.ports, 15 * 60_000, { datastoreIds: ["ds-default"], sweepEveryMs: 0 });
    await waitForGauges(fx.poolId, free);
  });

  it("has one point per step for every figure, and refuses a window it cannot serve", async () => {
    const body = expectStatus(await fx.r.api("GET", "/v1/metrics?minutes=2", { key: fx.tenant.key }), 200);
    expect(body.stepSeconds).toBe(10);
    for (const s of body.series as Series[]) expect(s.points).toHaveLength(12);
    const bad = await fx.r.api("GET", "/v1/metrics?minutes=0", { key: fx.tenant.key });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe("query.minutes");
    const unknown = await fx.r.api("GET", "/v1/metrics?window=5", { key: fx.tenant.key });
    expect(unknown.status).toBe(400);
  });
});
