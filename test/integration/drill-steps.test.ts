import { afterAll, beforeAll, expect, it } from "vitest";
import { loseFirst } from "../support/lost-responses.ts";
import { type RegionPair, runDrill, startRegionPair } from "./dr-harness.ts";
import { expectStatus, newTenant, readyImage, readyPool, waitFor } from "./harness.ts";

/** The DR region's replication worker gets Lambda's time limit; the drill must fit in short steps. */
const replicationTimeoutMs = 30_000;

let pair: RegionPair;
let tenant: { tenantId: string; key: string };
let poolId: string;
const users = ["ann", "ben", "cat"];

beforeAll(async () => {
  pair = await startRegionPair(64 * 1024 * 1024, {
    functionTimeoutsMs: { replication: replicationTimeoutMs },
  });
  tenant = await newTenant(pair.primary);
  const { imageId } = await readyImage(pair.primary, tenant.key);
  poolId = await readyPool(pair.primary, tenant.key, imageId, 20);
  // Each user logs on and off once in the primary, so there is data to verify in DR.
  for (const userId of users) {
    const logon = expectStatus(
      await pair.primary.api("POST", `/v1/pools/${poolId}/logons`, { key: tenant.key, body: { userId } }),
      200,
    );
    await waitFor(`${userId} attached`, async () => {
      const s = await pair.primary.api("GET", `/v1/sessions/${logon.sessionId}`, { key: tenant.key });
      return s.body.userData?.state === "ATTACHED";
    });
    expectStatus(
      await pair.primary.api("POST", `/v1/sessions/${logon.sessionId}/logoff`, { key: tenant.key }),
      200,
    );
  }
  await waitFor(
    "every user's data and the pool replicated to DR",
    async () => {
      const status = expectStatus(await pair.dr.api("GET", "/v1/dr/replication", { key: tenant.key }), 200);
      const got = await Promise.all(
        users.map((userId) => pair.dr.region.app.ports.userData.get({ tenantId: tenant.tenantId, userId })),
      );
      return status.dr.standbyPools.includes(poolId) && got.every((u) => u?.version === 1);
    },
    90_000,
  );
}, 240_000);
afterAll(async () => {
  await pair?.stop();
});

it("a drill of a 20-desktop pool completes in short steps under a 30 s per-message limit", async () => {
  const report = await runDrill(pair.dr, tenant.key, [poolId]);
  expect(report).toMatchObject({ state: "SUCCEEDED", usersPlanned: 3, usersLoggedOn: 3, usersVerified: 3 });
  expect(report.usersFailed).toEqual([]);
  expect(report.rtoAllLogonsMs).toBeGreaterThanOrEqual(report.rtoFirstLogonMs);
  // A step machine: several deliveries, none near the limit, and each far shorter than the drill.
  const worker = pair.dr.region.pollers.find((p) => p.functionName.endsWith("-replication"));
  const stats = worker?.stats();
  expect(stats?.timedOut).toBe(0);
  expect(stats?.longestInvocationMs).toBeLessThan(replicationTimeoutMs);
  const drillMs = Date.parse(report.finishedAt) - Date.parse(report.startedAt);
  expect(report.steps).toBeGreaterThanOrEqual(7);
  expect(stats?.longestInvocationMs).toBeLessThan(drillMs);
  // The drill's 20 desktops were made and are gone again.
  const pools = expectStatus(await pair.dr.api("GET", "/v1/pools", { key: tenant.key }), 200).items;
  expect(
    pools.filter((p: any) => p.name.startsWith(`drill-${report.drillId}`) && p.state === "ACTIVE"),
  ).toEqual([]);
});

it("a drill whose step was saved but whose answer was lost does not stand still", async () => {
  // The save of step 3 reaches the table, its answer does not: the SDK's retry then finds the
  // step taken. Nothing would send step 4 if that delivery took it for another's.
  const lost = loseFirst(
    pair.dr.region.app.dynamodb,
    (command, input) =>
      command === "PutItemCommand" && input.Item?.entity?.S === "drill" && input.Item?.steps?.N === "3",
  );
  try {
    const report = await runDrill(pair.dr, tenant.key, [poolId], 120_000);
    expect(lost.lost).toHaveLength(1);
    expect(report).toMatchObject({ state: "SUCCEEDED", usersVerified: 3 });
  } finally {
    lost.remove();
  }
});
