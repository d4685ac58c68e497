/**
 * Clone-storm caps: a datastore lets at most N disk jobs of a kind write at once (provisioning;
 * refresh and recompose), so a storm queues work instead of failing on storage contention. The
 * concurrency is measured from the worker's own records: when each job took its desktop
 * (`diskJobStartedAt`) and when the disk was done (`pristineAt`).
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expectStatus, useTenantRegion, waitForCounts } from "./harness.ts";

// Enough workers that, without the cap, more than two jobs would run at once (20 desktops come as
// four provision-desktops jobs of five).
const fx = useTenantRegion({ image: { blankSizeMiB: 64 }, region: { cloneWorkerConcurrency: 6 } });

const desktopsOf = async (poolId: string) =>
  expectStatus(await fx.r.api("GET", `/v1/pools/${poolId}/desktops`, { key: fx.tenant.key }), 200)
    .items as any[];

/** The most jobs whose [start, end] intervals overlap at one instant. */
function maxConcurrent(intervals: { start: number; end: number }[]) {
  const events = intervals.flatMap((i) => [
    { at: i.start, delta: 1 },
    { at: i.end, delta: -1 },
  ]);
  // At the same instant, an end comes before a start: touching intervals do not overlap.
  events.sort((a, b) => a.at - b.at || a.delta - b.delta);
  let now = 0;
  let max = 0;
  for (const e of events) {
    now += e.delta;
    max = Math.max(max, now);
  }
  return max;
}

const jobIntervals = (desktops: any[]) =>
  desktops.map((d) => ({ start: Date.parse(d.diskJobStartedAt), end: Date.parse(d.pristineAt) }));

describe("clone-storm caps", () => {
  it("with a provisioning cap of 2 on a datastore, 20 desktops are provisioned at most 2 at a time, and all finish", async () => {
    const path = join(fx.r.dataDir, "datastores", "capped");
    const registered = await fx.r.api("POST", "/v1/admin/datastores", {
      key: fx.r.operatorKey,
      body: { datastoreId: "capped", path, capacityGiB: 64, provisioningCap: 2, maintenanceCap: 2 },
    });
    expect(registered.status).toBe(201);
    const listed = expectStatus(await fx.r.api("GET", "/v1/admin/datastores", { key: fx.r.operatorKey }), 200)
      .items as any[];
    expect(listed.find((d) => d.datastoreId === "capped")?.caps).toEqual({ provisioning: 2, maintenance: 2 });
    // The region's defaults apply where a datastore sets none.
    expect(listed.find((d) => d.datastoreId === "ds-default")?.caps).toEqual({
      provisioning: 20,
      maintenance: 12,
    });

    const pool = expectStatus(
      await fx.r.api("POST", "/v1/pools", {
        key: fx.tenant.key,
        body: { name: "storm", imageId: fx.imageId, size: 20, datastoreIds: ["capped"] },
      }),
      201,
    );
    await waitForCounts(fx.r, fx.tenant.key, pool.poolId, { AVAILABLE: 20 }, 180_000);
    const desktops = await desktopsOf(pool.poolId);
    expect(desktops).toHaveLength(20);
    const concurrent = maxConcurrent(jobIntervals(desktops));
    expect(concurrent).toBeLessThanOrEqual(2);
    expect(concurrent).toBeGreaterThanOrEqual(1);
  });

  it("bad caps are refused naming the field, and change nothing", async () => {
    const bad = await fx.r.api("POST", "/v1/admin/datastores", {
      key: fx.r.operatorKey,
      body: { datastoreId: "nocap", path: "/tmp/nocap", capacityGiB: 1, provisioningCap: 0 },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe("body.provisioningCap");
    const listed = expectStatus(await fx.r.api("GET", "/v1/admin/datastores", { key: fx.r.operatorKey }), 200)
      .items as any[];
    expect(listed.some((d) => d.datastoreId === "nocap")).toBe(false);
  });
});
