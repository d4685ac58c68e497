/**
 * Continuous DR readiness (issue 12, point 6): on a schedule, without starting desktops, the DR
 * region checks a rotating sample of users' data against the primary's content checksums, and
 * that every READY image version and pool of the primary is there; GET /v1/dr/readiness shows it
 * in both regions, and a failure is a metric (alarmed in the stacks).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readinessCheckId } from "../../shared/domain/readiness.ts";
import { runReplicationMessage } from "../../shared/workers/dr-handlers.ts";
import { changeUserData, type RegionPair, startRegionPair, userDataDisk } from "./dr-harness.ts";
import { expectStatus, newTenant, readyImage, readyPool, run, type TestRegion, waitFor } from "./harness.ts";

/** The readiness schedule's period here: short, so a report follows within a few seconds. */
const periodMs = 1000;
/** "Within one schedule period", with room for a loaded machine: a few periods. */
const deadlineMs = 15 * periodMs;

let pair: RegionPair;
let tenant: { tenantId: string; key: string };
let imageId: string;
let poolId: string;

beforeAll(async () => {
  process.env.PRISTINE_READINESS_PERIOD_MS = String(periodMs);
  pair = await startRegionPair(
    64 * 1024 * 1024,
    { readinessEveryMs: periodMs },
    { readinessEveryMs: periodMs },
  );
  tenant = await newTenant(pair.primary);
  ({ imageId } = await readyImage(pair.primary, tenant.key));
  poolId = await readyPool(pair.primary, tenant.key, imageId, 2);
  for (const [userId, pattern] of [
    ["alice", 0x11],
    ["bob", 0x22],
    ["carol", 0x33],
  ] as const)
    await session(pair.primary, userId, pattern);
  for (const userId of ["alice", "bob", "carol"]) await replicated(userId, 1);
  await waitFor("pool config in DR", async () => {
    const s = await pair.dr.api("GET", "/v1/dr/replication", { key: tenant.key });
    return s.status === 200 && s.body.dr.standbyPools.includes(poolId);
  });
});
afterAll(async () => {
  await pair?.stop();
  delete process.env.PRISTINE_READINESS_PERIOD_MS;
});

const ref = (userId: string) => ({ tenantId: tenant.tenantId, userId });
const diskOf = (r: TestRegion, userId: string, version: number) =>
  userDataDisk(r, tenant.tenantId, userId, version);

const session = (r: TestRegion, userId: string, pattern: number) =>
  changeUserData(r, tenant, poolId, userId, { pattern });

async function replicated(userId: string, version: number) {
  await waitFor(
    `${userId} v${version} replicated`,
    async () =>
      ((await pair.primary.region.app.ports.userData.get(ref(userId)))?.replicatedVersion ?? 0) >= version,
    60_000,
  );
}

/** The first report of `r` that was checked after `since` and satisfies `ok`. */
async function reportAfter(
  r: TestRegion,
  since: number,
  what: string,
  ok: (report: any) => boolean = () => true,
) {
  let body: any;
  await waitFor(
    `${r.region.name}: ${what}`,
    async () => {
      body = expectStatus(await r.api("GET", "/v1/dr/readiness", { key: tenant.key }), 200);
      return body.report !== undefined && Date.parse(body.report.checkedAt) > since && ok(body.report);
    },
    deadlineMs,
    200,
  );
  return body;
}

const userState = (report: any, userId: string) =>
  report.users.find((u: any) => u.userId === userId) as { state: string; reason?: string } | undefined;

describe("DR readiness checks", () => {
  it("reports every sampled user, image version and pool as present and matching", async () => {
    const since = Date.now();
    const dr = await reportAfter(pair.dr, since, "a clean report");
    expect(dr.region).toBe("dr");
    expect(dr.periodMs).toBe(periodMs);
    expect(dr.report).toMatchObject({
      sourceRegion: "primary",
      checkedRegion: "dr",
      ok: true,
      failures: [],
      imageVersionsChecked: 1,
      poolsChecked: 1,
    });
    for (const userId of ["alice", "bob", "carol"])
      expect(userState(dr.report, userId), userId).toMatchObject({ state: "OK", contentVerified: true });
    // The primary shows the last report it received, and its own RPO now.
    const primary = await reportAfter(pair.primary, since, "the report received back");
    expect(primary.region).toBe("primary");
    expect(primary.report.ok).toBe(true);
    expect(primary.currentRpoMs).toBe(0);
  });

  it("names the user whose DR copy was corrupted, within a period, and raises the failure figure", async () => {
    await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x66 0 64k", diskOf(pair.dr, "bob", 1)]);
    const since = Date.now();
    const dr = await reportAfter(
      pair.dr,
      since,
      "bob's copy reported",
      (r) => userState(r, "bob")?.state === "FAILED",
    );
    expect(dr.report.ok).toBe(false);
    expect(dr.report.failures).toEqual([
      { kind: "user-data", id: "bob", reason: expect.stringContaining("content checksum") },
    ]);
    expect(userState(dr.report, "alice")?.state).toBe("OK");
    expect(userState(dr.report, "carol")?.state).toBe("OK");
    const primary = await reportAfter(pair.primary, since, "bob's failure received", (r) => !r.ok);
    expect(primary.report.failures.map((f: any) => f.id)).toEqual(["bob"]);
    // The figure the alarm watches.
    await waitFor(
      "readinessFailures recorded in DR",
      async () => {
        const m = expectStatus(await pair.dr.api("GET", "/v1/metrics?minutes=5", { key: tenant.key }), 200);
        const s = m.series.find((x: any) => x.name === "readinessFailures");
        return s.points.some((p: any) => p.sum > 0);
      },
      deadlineMs,
      200,
    );
  });

  it("reports a READY image version and a pool of the primary that DR does not hold", async () => {
    const drPorts = pair.dr.region.app.ports;
    await drPorts.images.removeVersion(tenant.tenantId, imageId, 1);
    const state = await drPorts.dr.getState(tenant.tenantId);
    await drPorts.dr.putStandbyPools(
      tenant.tenantId,
      [],
      new Date().toISOString(),
      state?.standbyRevision ?? 0,
    );
    const since = Date.now();
    const dr = await reportAfter(pair.dr, since, "missing config reported", (r) =>
      r.failures.some((f: any) => f.kind === "pool"),
    );
    expect(dr.report.failures).toEqual(
      expect.arrayContaining([
        { kind: "image-version", id: `${imageId}@1`, reason: expect.any(String) },
        { kind: "pool", id: poolId, reason: expect.any(String) },
      ]),
    );
  });

  it("a user whose change is still pending is not yet comparable, not a failure", async () => {
    // The primary's replication worker stops: erin's change is committed but never shipped, and the
    // sampling that worker would do is run here, by hand (DR checks and stores as before).
    const primary = pair.primary.region;
    await primary.pollers.find((p) => p.functionName === "primary-replication")?.stop();
    await session(pair.primary, "erin", 0x44);
    await waitFor(
      "erin's change committed",
      async () => (await primary.app.ports.userData.get(ref("erin")))?.version === 1,
    );
    const since = Date.now();
    await runReplicationMessage(primary.app, {
      kind: "sample-readiness",
      tenantId: tenant.tenantId,
      checkId: readinessCheckId(new Date(), periodMs),
    });
    const dr = await reportAfter(pair.dr, since, "erin reported", (r) => userState(r, "erin") !== undefined);
    expect(userState(dr.report, "erin")).toMatchObject({ state: "NOT_COMPARABLE", drVersion: 0 });
    expect(dr.report.failures.map((f: any) => f.id)).not.toContain("erin");
    expect(dr.report.rpoMs).toBeGreaterThan(0);
    const status = expectStatus(await pair.primary.api("GET", "/v1/dr/readiness", { key: tenant.key }), 200);
    expect(status.currentRpoMs).toBeGreaterThan(0);
  });
});
