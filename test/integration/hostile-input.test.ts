/**
 * Every route of the API's own table, fuzzed from its schemas and beyond (wrong types, huge and
 * deep JSON, unicode, traversal in ids and paths, out-of-range numbers, missing and extra fields,
 * bad encodings): never a 5xx, and a 4xx changes nothing. No worker runs here, so any change to
 * the table comes from the request itself.
 */
import fc from "fast-check";
import { beforeAll, expect, it } from "vitest";
import { assertMatchesContract } from "../support/contract.ts";
import { apiRoutes, hostileProbes, type Ids, type Probe } from "../support/route-examples.ts";
import { tableSnapshot } from "../support/table-snapshot.ts";
import { expectStatus, useTenantRegion } from "./harness.ts";

const stress = process.env.PRISTINE_STRESS === "1";
const runsPerRoute = Number(process.env.PRISTINE_FUZZ_RUNS ?? (stress ? 300 : 12));

const fx = useTenantRegion({ region: { workers: [], reconcileEveryMs: 0 } });
let ids: Ids;

beforeAll(async () => {
  const image = expectStatus(
    await fx.r.api("POST", "/v1/images", { key: fx.tenant.key, body: { name: "fuzz" } }),
    201,
  );
  ids = {
    imageId: image.imageId,
    poolId: "pool-none",
    sessionId: "ses-x.pool-none.dsk-none",
    drillId: "drl-none",
    version: 1,
    datastoreId: "ds-default",
  };
});

async function send(probe: Probe) {
  const key = probe.route.access === "operator" ? fx.r.operatorKey : fx.tenant.key;
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  let body: string | undefined;
  if (probe.raw !== undefined) body = probe.raw;
  else if (probe.body !== undefined) body = JSON.stringify(probe.body);
  if (body !== undefined) headers["content-type"] = probe.contentType ?? "application/json";
  const res = await fetch(`${fx.r.region.apiUrl}${probe.path}`, {
    method: probe.route.method,
    headers,
    ...(body !== undefined && probe.route.method !== "GET" ? { body } : {}),
  });
  const answer = { status: res.status, type: res.headers.get("content-type") ?? "", text: await res.text() };
  assertMatchesContract(probe.route.method, probe.path, { ...answer, contentType: answer.type });
  return answer;
}

for (const route of apiRoutes.filter((r) => r.access !== "public")) {
  it(
    `${route.method} ${route.path}: no 5xx, and a 4xx changes nothing`,
    async () => {
      await fc.assert(
        fc.asyncProperty(hostileProbes(route, ids), async (probe) => {
          const before = await tableSnapshot(fx.r.region, { exceptFiguresOf: fx.tenant.tenantId });
          const res = await send(probe);
          expect(
            res.status,
            `${probe.path} ${probe.raw ?? JSON.stringify(probe.body)?.slice(0, 200)} -> ${res.text}`,
          ).toBeLessThan(500);
          if (res.status >= 400) {
            expect(res.type).toContain("application/problem+json");
            expect(
              await tableSnapshot(fx.r.region, { exceptFiguresOf: fx.tenant.tenantId }),
              `${probe.path} answered ${res.status} but changed the table`,
            ).toBe(before);
          }
        }),
        { numRuns: runsPerRoute, endOnFailure: true },
      );
    },
    stress ? 600_000 : 120_000,
  );
}
