/**
 * The isolation matrix, generated from the API's route table (a new route is covered without
 * editing this test): tenant B tries every route on every object of tenant A and gets 404 with
 * nothing changed; wrong, malformed or missing keys get 401; a tenant key on operator routes and
 * the operator key on tenant routes get 403.
 */

import { beforeAll, describe, expect, it } from "vitest";
import { assertMatchesContract } from "../support/contract.ts";
import { apiRoutes, type Ids, validProbe } from "../support/route-examples.ts";
import { tableSnapshot } from "../support/table-snapshot.ts";
import { waitForDrained } from "./dr-harness.ts";
import { expectStatus, newTenant, readyPool, useTenantRegion } from "./harness.ts";

const fx = useTenantRegion({ image: { blankSizeMiB: 8 }, region: { reconcileEveryMs: 0 } });
let b: { tenantId: string; key: string };
let ofA: Ids;

beforeAll(async () => {
  b = await newTenant(fx.r, "tenant-b");
  const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 1);
  const s = expectStatus(
    await fx.r.api("POST", `/v1/pools/${poolId}/logons`, { key: fx.tenant.key, body: { userId: "ann" } }),
    200,
  );
  const ports = fx.r.region.app.ports;
  const now = new Date().toISOString();
  await ports.dr.putDrill({
    tenantId: fx.tenant.tenantId,
    drillId: "drl-of-tenant-a",
    state: "SUCCEEDED",
    phase: "DONE",
    pools: [poolId],
    startedAt: now,
  });
  ofA = {
    imageId: fx.imageId,
    version: 1,
    poolId,
    sessionId: s.sessionId,
    drillId: "drl-of-tenant-a",
    datastoreId: "ds-default",
    pools: [poolId],
  };
});

/**
 * Waits until the workers are idle and the figures recorded so far are written (the region writes
 * them every second), so that any change to the table is the request's.
 */
async function idle() {
  const r = fx.r.region;
  for (const q of [r.queues.cloneJobs.url, r.queues.logoff.url, r.dr.userData.url, r.dr.replication.url])
    await waitForDrained(fx.r, q);
  await r.app.metrics.flush();
}

/** The table, without tenant B's own figures: everything of A's, and every other item, must stay. */
const snapshot = () => tableSnapshot(fx.r.region, { exceptFiguresOf: b.tenantId });

const call = (method: string, path: string, authorization: string | undefined, body?: unknown) =>
  fetch(`${fx.r.region.apiUrl}${path}`, {
    method,
    headers: {
      ...(authorization !== undefined ? { authorization } : {}),
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  }).then(async (res) => {
    const answer = { status: res.status, text: await res.text() };
    assertMatchesContract(method, path, { ...answer, contentType: res.headers.get("content-type") });
    return answer;
  });

const onObjects = apiRoutes.filter((r) => r.access === "tenant" && Object.keys(r.params).length > 0);

describe("tenant B on tenant A's objects", () => {
  for (const route of onObjects) {
    it(`${route.method} ${route.path}: 404, and nothing changes`, async () => {
      await idle();
      const before = await snapshot();
      const probe = validProbe(route, ofA);
      const res = await call(route.method, probe.path, `Bearer ${b.key}`, probe.body);
      expect(res.status, res.text).toBe(404);
      await idle();
      expect(await snapshot()).toBe(before);
    });
  }

  it("the tenant routes without an object never show or take tenant A's objects", async () => {
    for (const route of apiRoutes.filter(
      (r) => r.access === "tenant" && Object.keys(r.params).length === 0,
    )) {
      const probe = validProbe(route, ofA);
      if (route.method === "GET") {
        const res = await call("GET", probe.path, `Bearer ${b.key}`);
        expect(res.status, route.path).toBe(200);
        for (const id of [ofA.imageId, ofA.poolId, ofA.sessionId, ofA.drillId] as string[])
          expect(res.text, `${route.path} shows ${id}`).not.toContain(id);
        continue;
      }
      // A write whose body names one of A's objects is refused, and A's objects stay as they were.
      const names = JSON.stringify(probe.body ?? {});
      if (![ofA.imageId, ofA.poolId].some((id) => names.includes(id as string))) continue;
      await idle();
      const before = await snapshot();
      const res = await call(route.method, probe.path, `Bearer ${b.key}`, probe.body);
      expect(res.status, `${route.path}: ${res.text}`).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      await idle();
      expect(await snapshot()).toBe(before);
    }
  });
});

describe("keys", () => {
  const guarded = apiRoutes.filter((r) => r.access !== "public");
  const wrongKeys: [string, string | undefined][] = [
    ["missing", undefined],
    ["unknown", "Bearer prs_not-a-key-of-anyone"],
    ["malformed", "Bearer"],
    ["another scheme", `Basic ${Buffer.from("a:b").toString("base64")}`],
    ["two tokens", "Bearer a b"],
  ];

  it("wrong, malformed or missing keys get 401 on every route", async () => {
    for (const route of guarded)
      for (const [what, authorization] of wrongKeys) {
        const probe = validProbe(route, ofA);
        const res = await call(route.method, probe.path, authorization, probe.body);
        expect(res.status, `${what} key on ${route.method} ${route.path}`).toBe(401);
      }
  });

  it("a tenant key on operator routes, and the operator key on tenant routes, get 403", async () => {
    await idle();
    const before = await snapshot();
    for (const route of guarded) {
      const probe = validProbe(route, ofA);
      const key = route.access === "operator" ? fx.tenant.key : fx.r.operatorKey;
      const res = await call(route.method, probe.path, `Bearer ${key}`, probe.body);
      expect(res.status, `${route.method} ${route.path}`).toBe(403);
    }
    await idle();
    expect(await snapshot()).toBe(before);
  });
});
