import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  expectStatus,
  newTenant,
  readyImage,
  readyVersion,
  type TestRegion,
  useTenantRegion,
  waitFor,
  waitForCounts,
} from "./harness.ts";

const GiB = 1024 ** 3;
// The shared datastore: 1 TiB at overcommit 2, so 2 TiB of effective room for every tenant.
const fx = useTenantRegion({ region: { defaultDatastoreCapacity: { capacityGiB: 1024, overcommit: 2 } } });

const operator = () => fx.r.operatorKey;
const quotasOf = async (key: string) => expectStatus(await fx.r.api("GET", "/v1/quotas", { key }), 200);
const setQuotas = async (tenantId: string, body: Record<string, number>) =>
  expectStatus(await fx.r.api("PUT", `/v1/admin/tenants/${tenantId}/quotas`, { key: operator(), body }), 200);
const datastores = async (r: TestRegion) =>
  expectStatus(await r.api("GET", "/v1/admin/datastores", { key: operator() }), 200).items as any[];
const poolsOf = async (key: string) =>
  expectStatus(await fx.r.api("GET", "/v1/pools", { key }), 200).items as any[];
const createPool = (key: string, imageId: string, size: number, name = `p-${size}`) =>
  fx.r.api("POST", "/v1/pools", { key, body: { name, imageId, size } });

function expectQuotaRefusal(res: { status: number; body: any }, name: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(409);
  expect(res.body.type).toMatch(/\/quota-exceeded$/);
  expect(res.body.quota.name).toBe(name);
  expect(res.body.detail).toContain(`quota ${name} exceeded`);
  return res.body.quota as { name: string; limit: number; used: number; requested: number };
}

describe("quotas against a hostile tenant", () => {
  it("tenant B at its quota cannot take the capacity that tenant A's pool creation then needs", async () => {
    const a = await newTenant(fx.r, "tenant-a");
    const b = await newTenant(fx.r, "tenant-b");
    // The defaults already refuse the 961 GiB blank image a hostile tenant published.
    const image = expectStatus(
      await fx.r.api("POST", "/v1/images", { key: b.key, body: { name: "huge" } }),
      201,
    );
    const huge = { blankSizeMiB: 961 * 1024 };
    const refusedImage = await fx.r.api("POST", `/v1/images/${image.imageId}/versions`, {
      key: b.key,
      body: { source: huge },
    });
    expect(expectQuotaRefusal(refusedImage, "maxImageBytes")).toEqual({
      name: "maxImageBytes",
      limit: 256 * GiB,
      used: 0,
      requested: 961 * GiB,
    });
    expect(
      expectStatus(await fx.r.api("GET", `/v1/images/${image.imageId}`, { key: b.key }), 200).versions,
    ).toEqual([]);

    // Even with the image allowed, its provisioned bytes stay within B's quota (1 TiB by default).
    await setQuotas(b.tenantId, { maxImageBytes: 1024 * GiB });
    await readyVersion(fx.r, b.key, image.imageId, huge);
    const before = await datastores(fx.r);
    const refused = expectQuotaRefusal(await createPool(b.key, image.imageId, 2), "maxProvisionedBytes");
    expect(refused).toEqual({
      name: "maxProvisionedBytes",
      limit: 1024 * GiB,
      used: 0,
      requested: 2 * 961 * GiB,
    });
    expect(await poolsOf(b.key)).toEqual([]);
    expect(await datastores(fx.r)).toEqual(before);

    // B takes what its quota allows, and no more: growing to 2 is refused the same way.
    const bPool = expectStatus(await createPool(b.key, image.imageId, 1), 201);
    const grow = await fx.r.api("PATCH", `/v1/pools/${bPool.poolId}`, { key: b.key, body: { size: 2 } });
    expect(expectQuotaRefusal(grow, "maxProvisionedBytes")).toMatchObject({
      used: 961 * GiB,
      requested: 961 * GiB,
    });
    expect(expectStatus(await fx.r.api("GET", `/v1/pools/${bPool.poolId}`, { key: b.key }), 200).size).toBe(
      1,
    );
    expect((await quotasOf(b.key)).usage).toEqual({ desktops: 1, provisionedBytes: 961 * GiB, images: 1 });

    // Without B's quota, 2 x 961 GiB would leave 126 GiB of the 2 TiB: too little for A's 2 x 100 GiB.
    const aImage = await readyImage(fx.r, a.key, { blankSizeMiB: 100 * 1024 });
    const aPool = expectStatus(await createPool(a.key, aImage.imageId, 2), 201);
    await waitForCounts(fx.r, a.key, aPool.poolId, { AVAILABLE: 2 });
    const ds = (await datastores(fx.r)).find((d) => d.datastoreId === "ds-default");
    expect(ds.provisionedBytes).toBe(961 * GiB + 200 * GiB);

    // Each tenant sees its own usage only.
    expect(await quotasOf(a.key)).toMatchObject({
      tenantId: a.tenantId,
      overridden: [],
      usage: { desktops: 2, provisionedBytes: 200 * GiB, images: 1 },
    });
    // Deleting a pool gives its quota back.
    expectStatus(await fx.r.api("DELETE", `/v1/pools/${bPool.poolId}`, { key: b.key }), 202);
    await waitFor("B's desktop and bytes released", async () => {
      const { usage } = await quotasOf(b.key);
      return usage.desktops === 0 && usage.provisionedBytes === 0;
    });
  });
});

describe("the desktops quota", () => {
  it("a tenant at its quota gets 409 naming it and nothing changes; the operator raises it and it works", async () => {
    const c = await newTenant(fx.r, "tenant-c");
    const { imageId } = await readyImage(fx.r, c.key, { blankSizeMiB: 64 });
    expect((await setQuotas(c.tenantId, { maxDesktops: 3 })).overridden).toEqual(["maxDesktops"]);
    const pool = expectStatus(await createPool(c.key, imageId, 2), 201);
    await waitForCounts(fx.r, c.key, pool.poolId, { AVAILABLE: 2 });
    const usage = (await quotasOf(c.key)).usage;

    const grow = await fx.r.api("PATCH", `/v1/pools/${pool.poolId}`, { key: c.key, body: { size: 4 } });
    expect(expectQuotaRefusal(grow, "maxDesktops")).toEqual({
      name: "maxDesktops",
      limit: 3,
      used: 2,
      requested: 2,
    });
    expect(grow.body.detail).toBe("quota maxDesktops exceeded: limit 3; in use: 2; this request needs 2");
    expectQuotaRefusal(await createPool(c.key, imageId, 2, "second"), "maxDesktops");
    expect((await poolsOf(c.key)).map((p) => [p.poolId, p.size])).toEqual([[pool.poolId, 2]]);
    expect(
      expectStatus(await fx.r.api("GET", `/v1/pools/${pool.poolId}/desktops`, { key: c.key }), 200).items,
    ).toHaveLength(2);
    expect((await quotasOf(c.key)).usage).toEqual(usage);

    const raised = await setQuotas(c.tenantId, { maxDesktops: 4 });
    expect(raised.limits.maxDesktops).toBe(4);
    expectStatus(await fx.r.api("PATCH", `/v1/pools/${pool.poolId}`, { key: c.key, body: { size: 4 } }), 200);
    await waitForCounts(fx.r, c.key, pool.poolId, { AVAILABLE: 4 });
    expect((await quotasOf(c.key)).usage.desktops).toBe(4);
    // Back to the defaults: a PUT without the quota.
    expect((await setQuotas(c.tenantId, {})).limits.maxDesktops).toBe(500);
  });

  it("a creation sent twice with one Idempotency-Key is charged once", async () => {
    const g = await newTenant(fx.r, "tenant-g");
    const { imageId } = await readyImage(fx.r, g.key, { blankSizeMiB: 64 });
    // Sent as a client whose first answer was lost sends it again.
    const send = () =>
      fetch(`${fx.r.region.apiUrl}/v1/pools`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${g.key}`,
          "content-type": "application/json",
          "idempotency-key": "pool-once",
        },
        body: JSON.stringify({ name: "once", imageId, size: 3 }),
      }).then(async (res) => ({ status: res.status, body: (await res.json()) as any }));
    const first = await send();
    const again = await send();
    expect([first.status, again.status]).toEqual([201, 201]);
    expect(again.body.poolId).toBe(first.body.poolId);
    expect(await poolsOf(g.key)).toHaveLength(1);
    expect((await quotasOf(g.key)).usage).toMatchObject({
      desktops: 3,
      provisionedBytes: 3 * 64 * 1024 ** 2,
    });
  });

  it("concurrent pool creations cannot both pass the quota", async () => {
    const d = await newTenant(fx.r, "tenant-d");
    const { imageId } = await readyImage(fx.r, d.key, { blankSizeMiB: 64 });
    await setQuotas(d.tenantId, { maxDesktops: 5 });
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => createPool(d.key, imageId, 2, `race-${i}`)),
    );
    const created = answers.filter((x) => x.status === 201);
    const refused = answers.filter((x) => x.status !== 201);
    expect(created).toHaveLength(2);
    for (const x of refused) expectQuotaRefusal(x, "maxDesktops");
    expect((await quotasOf(d.key)).usage.desktops).toBe(4);
    expect((await poolsOf(d.key)).map((p) => p.poolId).sort()).toEqual(
      created.map((x) => x.body.poolId).sort(),
    );
  });
});

describe("the images quota and the operator's routes", () => {
  it("refuses an image past maxImages, and bad quota input with a 400 naming the field", async () => {
    const e = await newTenant(fx.r, "tenant-e");
    await setQuotas(e.tenantId, { maxImages: 1 });
    expectStatus(await fx.r.api("POST", "/v1/images", { key: e.key, body: { name: "one" } }), 201);
    const second = await fx.r.api("POST", "/v1/images", { key: e.key, body: { name: "two" } });
    expect(expectQuotaRefusal(second, "maxImages")).toEqual({
      name: "maxImages",
      limit: 1,
      used: 1,
      requested: 1,
    });
    expect(expectStatus(await fx.r.api("GET", "/v1/images", { key: e.key }), 200).items).toHaveLength(1);

    const put = (body: unknown, key = operator(), tenantId = e.tenantId) =>
      fx.r.api("PUT", `/v1/admin/tenants/${tenantId}/quotas`, { key, body });
    for (const [body, field] of [
      [{ maxDesktops: -1 }, "body.maxDesktops"],
      [{ maxProvisionedBytes: "lots" }, "body.maxProvisionedBytes"],
      [{ maxImages: 1.5 }, "body.maxImages"],
      [{ maxCats: 3 }, "body"],
    ] as const) {
      const res = await put(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.field).toBe(field);
    }
    expect((await put({ maxImages: 9 }, e.key)).status).toBe(403);
    expect((await put({ maxImages: 9 }, operator(), "ten-nobody")).status).toBe(404);
    const seen = expectStatus(
      await fx.r.api("GET", `/v1/admin/tenants/${e.tenantId}/quotas`, { key: operator() }),
      200,
    );
    expect(seen).toEqual(await quotasOf(e.key));
    expect(seen).toMatchObject({ limits: { maxImages: 1 }, overridden: ["maxImages"], usage: { images: 1 } });
  });
});

describe("the CLI", () => {
  /** `pristine` as a child process against this region, with a key and no profile file. */
  const cli = (key: string, args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const env = {
        ...process.env,
        PRISTINE_API_URL: fx.r.region.apiUrl,
        PRISTINE_API_KEY: key,
        PRISTINE_CONFIG: join(fx.r.dataDir, "no-cli-config.json"),
      };
      execFile(process.execPath, ["cli/main.ts", ...args], { env }, (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code ?? -1) : 0, stdout, stderr }),
      );
    });

  it("the operator sets a tenant's quotas (keeping those set before); the tenant sees them", async () => {
    const f = await newTenant(fx.r, "tenant-f");
    await setQuotas(f.tenantId, { maxImages: 7 });
    const set = await cli(operator(), [
      "--json",
      "tenants",
      "set-quotas",
      f.tenantId,
      "--desktops",
      "12",
      "--provisioned-gib",
      "1.5",
    ]);
    expect(set.code, set.stderr).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({
      limits: { maxDesktops: 12, maxProvisionedBytes: 1.5 * GiB, maxImages: 7 },
      overridden: ["maxDesktops", "maxProvisionedBytes", "maxImages"],
    });
    const seen = await cli(f.key, ["quotas"]);
    expect(seen.code, seen.stderr).toBe(0);
    expect(seen.stdout).toMatch(/desktops\s+12\s+0\s+operator/);
    expect(seen.stdout).toMatch(/provisioned\s+1\.5 GiB\s+0 B\s+operator/);
    expect(seen.stdout).toMatch(/one image's size\s+256\.0 GiB\s+-\s+default/);
    const reset = await cli(operator(), [
      "--json",
      "tenants",
      "set-quotas",
      f.tenantId,
      "--reset",
      "--images",
      "3",
    ]);
    expect(JSON.parse(reset.stdout)).toMatchObject({
      overridden: ["maxImages"],
      limits: { maxImages: 3, maxDesktops: 500 },
    });
    // Bad input is refused before anything is sent (exit 2); the API's refusals are exit 3.
    const bad = await cli(operator(), ["tenants", "set-quotas", f.tenantId, "--desktops", "-4"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/maxDesktops/);
    const tenantTries = await cli(f.key, ["tenants", "set-quotas", f.tenantId, "--desktops", "900"]);
    expect(tenantTries.code).toBe(3);
    expect((await quotasOf(f.key)).limits.maxDesktops).toBe(500);
  });
});
