import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { qcow2Driver } from "../../shared/adapters/storage/qcow2-driver.ts";
import type { ImageVersion } from "../../shared/domain/model.ts";
import type { StorageDriver } from "../../shared/ports/index.ts";
import {
  expectStatus,
  importPath,
  pathsOn,
  readyImage,
  readyPool,
  readyVersion,
  registerDatastore,
  run,
  useTenantRegion,
  waitFor,
  waitForCounts,
} from "./harness.ts";

const fx = useTenantRegion({ image: { blankSizeMiB: 1024 } });

const listDatastores = async () =>
  expectStatus(await fx.r.api("GET", "/v1/admin/datastores", { key: fx.r.operatorKey }), 200).items as any[];
const desktopsOf = async (poolId: string) =>
  expectStatus(await fx.r.api("GET", `/v1/pools/${poolId}/desktops`, { key: fx.tenant.key }), 200)
    .items as any[];

describe("datastores", () => {
  it("registers datastores (operator only) and rejects bad input naming the field", async () => {
    await registerDatastore(fx.r, "ds-x", 10, 2);
    expect(
      (await fx.r.api("POST", "/v1/admin/datastores", { key: fx.tenant.key, body: { datastoreId: "ds-y" } }))
        .status,
    ).toBe(403);
    const bad = await fx.r.api("POST", "/v1/admin/datastores", {
      key: fx.r.operatorKey,
      body: { datastoreId: "ds-y", path: "relative/dir", capacityGiB: 1 },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe("body.path");
    const all = await listDatastores();
    expect(all.map((d) => d.datastoreId)).toEqual(expect.arrayContaining(["ds-default", "ds-x"]));
    expect(all.find((d) => d.datastoreId === "ds-y")).toBeUndefined();
    expect(all.find((d) => d.datastoreId === "ds-x")).toMatchObject({ capacityGiB: 10, overcommit: 2 });
  });

  it("places desktops across three datastores by free capacity; an exhausted set answers 409 and makes nothing", async () => {
    await registerDatastore(fx.r, "cap-a", 2);
    await registerDatastore(fx.r, "cap-b", 4);
    await registerDatastore(fx.r, "cap-c", 8);
    const datastoreIds = ["cap-a", "cap-b", "cap-c"];
    const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 10, { datastoreIds });
    const desktops = await desktopsOf(poolId);
    const on = (id: string) => desktops.filter((d) => d.datastoreId === id).length;
    expect([on("cap-a"), on("cap-b"), on("cap-c")]).toEqual([1, 3, 6]);
    // Each desktop's delta sits next to its replica, on its own datastore.
    for (const d of desktops) {
      const paths = await pathsOn(fx.r, d.datastoreId);
      const info = JSON.parse(
        (
          await run("qemu-img", [
            "info",
            "--output=json",
            "-U",
            paths.desktop({ ...d, tenantId: fx.tenant.tenantId }),
          ])
        ).stdout,
      );
      expect(info["full-backing-filename"] ?? info["backing-filename"]).toBe(
        paths.replica({ tenantId: fx.tenant.tenantId, imageId: fx.imageId, version: 1 }, d.datastoreId),
      );
    }
    const before = await listDatastores();
    const poolsBefore = expectStatus(await fx.r.api("GET", "/v1/pools", { key: fx.tenant.key }), 200).items
      .length;
    // 4 GiB of room is left (1 + 1 + 2): five 1 GiB desktops do not fit.
    const refused = await fx.r.api("POST", "/v1/pools", {
      key: fx.tenant.key,
      body: { name: "too-big", imageId: fx.imageId, size: 5, datastoreIds },
    });
    expect(refused.status).toBe(409);
    expect(refused.body.type).toMatch(/insufficient-capacity$/);
    expect(refused.body.detail).toMatch(/1 desktop\(s\) do not fit; 1\.00 GiB more/);
    expect(expectStatus(await fx.r.api("GET", "/v1/pools", { key: fx.tenant.key }), 200).items).toHaveLength(
      poolsBefore,
    );
    expect(await listDatastores()).toEqual(before);
    // Growing the pool past the room is refused the same way; within it, it works.
    const grow = await fx.r.api("PATCH", `/v1/pools/${poolId}`, { key: fx.tenant.key, body: { size: 15 } });
    expect(grow.status).toBe(409);
    expect(grow.body.type).toMatch(/insufficient-capacity$/);
    expectStatus(
      await fx.r.api("PATCH", `/v1/pools/${poolId}`, { key: fx.tenant.key, body: { size: 14 } }),
      200,
    );
    await waitForCounts(fx.r, fx.tenant.key, poolId, { AVAILABLE: 14 });
    const full = await listDatastores();
    for (const id of datastoreIds) expect(full.find((d) => d.datastoreId === id).effectiveFreeBytes).toBe(0);
    // Deleting the pool gives the room back.
    expectStatus(await fx.r.api("DELETE", `/v1/pools/${poolId}`, { key: fx.tenant.key }), 202);
    await waitFor("room released", async () =>
      (await listDatastores())
        .filter((d) => datastoreIds.includes(d.datastoreId))
        .every((d) => d.provisionedBytes === 0),
    );
  });

  it("rebalance moves free desktops off a datastore above the threshold", async () => {
    await registerDatastore(fx.r, "reb-a", 4);
    await registerDatastore(fx.r, "reb-b", 0.5); // too small for one desktop, for now
    const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 4, { datastoreIds: ["reb-a", "reb-b"] });
    expect((await desktopsOf(poolId)).every((d) => d.datastoreId === "reb-a")).toBe(true);
    await registerDatastore(fx.r, "reb-b", 8); // grown: now there is somewhere to go
    const report = expectStatus(
      await fx.r.api("POST", "/v1/admin/datastores/reb-a/rebalance", {
        key: fx.r.operatorKey,
        body: { thresholdPercent: 50 },
      }),
      202,
    );
    expect(report.moved).toHaveLength(2);
    await waitFor("two desktops on reb-b", async () => {
      const desktops = await desktopsOf(poolId);
      const on = (id: string) =>
        desktops.filter((d) => d.datastoreId === id && d.state === "AVAILABLE").length;
      return desktops.length === 4 && on("reb-a") === 2 && on("reb-b") === 2;
    });
    const after = await listDatastores();
    expect(after.find((d) => d.datastoreId === "reb-a").provisionedPercent).toBe(50);
  });
});

describe("clone-storm cap slots", () => {
  it("20 disk jobs of one worker take 20 slots of a cap of 20 at once, with one write each; the 21st learns it with one", async () => {
    const slots = fx.r.region.app.ports.datastores;
    const client = fx.r.region.app.dynamodb;
    let puts = 0;
    const name = "count-slot-puts";
    client.middlewareStack.add(
      (next, context) => (args) => {
        if ((context as { commandName?: string }).commandName === "PutItemCommand") puts++;
        return next(args);
      },
      { step: "initialize", name },
    );
    try {
      const scope = `slots-${Date.now()}#provisioning`;
      const taken = await Promise.all(
        Array.from({ length: 20 }, (_, i) => slots.acquireSlot(scope, `job-${i}`, 20, 60_000)),
      );
      expect(new Set(taken).size).toBe(20);
      expect(puts).toBe(20);
      // Every slot is held: another job tries one, reads which are held, and waits.
      expect(await slots.acquireSlot(scope, "job-20", 20, 60_000)).toBeUndefined();
      expect(puts).toBe(21);
      // A freed slot is the next one's, at the first try.
      await slots.releaseSlot(scope, taken[7] ?? -1, "job-7");
      expect(await slots.acquireSlot(scope, "job-21", 20, 60_000)).toBe(taken[7]);
      expect(puts).toBe(22);
    } finally {
      client.middlewareStack.remove(name);
    }
  });
});

describe("replicas", () => {
  it("20 concurrent provisions on a new datastore create its replica exactly once", async () => {
    const path = await registerDatastore(fx.r, "ds-fresh", 100);
    const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 20, { datastoreIds: ["ds-fresh"] });
    expect((await desktopsOf(poolId)).every((d) => d.datastoreId === "ds-fresh")).toBe(true);
    const files = await readdir(join(path, "replicas", fx.tenant.tenantId));
    expect(files).toEqual([`${fx.imageId}-v1.qcow2`]);
    const replicas = await fx.r.region.app.ports.replicas.list(fx.tenant.tenantId, fx.imageId, 1);
    const fresh = replicas.filter((x) => x.datastoreId === "ds-fresh");
    expect(fresh).toHaveLength(1);
    expect(fresh[0]?.creations).toBe(1);
  });

  it("two workers on one datastore (separate processes' drivers) create it once; a bad checksum keeps none", async () => {
    const version = (await fx.r.region.app.ports.images.getVersion(
      fx.tenant.tenantId,
      fx.imageId,
      1,
    )) as ImageVersion;
    const storage = fx.r.region.app.config.storage;
    const path = join(fx.r.dataDir, "race");
    const [one, two] = [1, 2].map(() => qcow2Driver({ ...storage, datastores: { race: path } })) as [
      StorageDriver,
      StorageDriver,
    ];
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? one : two).ensureReplica(version, "race")),
    );
    expect(results.filter((x) => x.created)).toHaveLength(1);
    const corrupt = qcow2Driver({ ...storage, datastores: { bad: join(fx.r.dataDir, "bad") } });
    await expect(corrupt.ensureReplica({ ...version, sha256: "0".repeat(64) }, "bad")).rejects.toThrow(
      /sha256 mismatch/,
    );
    expect(await readdir(join(fx.r.dataDir, "bad", "replicas", fx.tenant.tenantId))).toEqual([]);
  });
});

describe("image versions", () => {
  it("rejects invalid sources with a 400 that says why, and imports raw", async () => {
    const image = expectStatus(
      await fx.r.api("POST", "/v1/images", { key: fx.tenant.key, body: { name: "x" } }),
      201,
    );
    const publish = (path: string) =>
      fx.r.api("POST", `/v1/images/${image.imageId}/versions`, {
        key: fx.tenant.key,
        body: { source: { path } },
      });
    const at = (name: string) => importPath(fx.r, fx.tenant.tenantId, name);
    const base = await at("base.qcow2");
    const overlay = await at("overlay.qcow2");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", base, "16M"]);
    await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay]);
    const text = await at("notes.txt");
    await writeFile(text, "not a disk\n");
    const vmdk = await at("disk.vmdk");
    await run("qemu-img", ["create", "-q", "-f", "vmdk", vmdk, "16M"]);
    const cases: [string, RegExp][] = [
      [overlay, /its own backing file/],
      [text, /not a disk image/],
      [vmdk, /format vmdk is not supported/],
      ["/etc/hostname", /no such disk file in your import folder/],
    ];
    for (const [path, why] of cases) {
      const res = await publish(path);
      expect(res.status, path).toBe(400);
      expect(res.body.field).toBe("source.path");
      expect(res.body.detail).toMatch(why);
    }
    const got = expectStatus(
      await fx.r.api("GET", `/v1/images/${image.imageId}`, { key: fx.tenant.key }),
      200,
    );
    expect(got.versions).toEqual([]);
    const raw = await at("disk.raw");
    await writeFile(raw, Buffer.alloc(1024 * 1024, 0x5a));
    const n = await readyVersion(fx.r, fx.tenant.key, image.imageId, { path: raw });
    const v = (await fx.r.region.app.ports.images.getVersion(
      fx.tenant.tenantId,
      image.imageId,
      n,
    )) as ImageVersion;
    expect(v).toMatchObject({ state: "READY", virtualSizeBytes: 1024 * 1024 });
    expect(v.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("retire stops new desktops; delete is refused while used and frees the replicas after", async () => {
    const image = await readyImage(fx.r, fx.tenant.key, { blankSizeMiB: 16 });
    const v2 = await readyVersion(fx.r, fx.tenant.key, image.imageId, { blankSizeMiB: 16 });
    const poolId = await readyPool(fx.r, fx.tenant.key, image.imageId, 2, { imageVersion: 1 });
    const del = await fx.r.api("DELETE", `/v1/images/${image.imageId}/versions/1`, { key: fx.tenant.key });
    expect(del.status).toBe(409);
    expect(del.body.type).toMatch(/image-version-in-use$/);
    expectStatus(
      await fx.r.api("POST", `/v1/images/${image.imageId}/versions/1/retire`, { key: fx.tenant.key }),
      200,
    );
    const refused = await fx.r.api("POST", "/v1/pools", {
      key: fx.tenant.key,
      body: { name: "old", imageId: image.imageId, imageVersion: 1, size: 1 },
    });
    expect(refused.status).toBe(409);
    expect(refused.body.type).toMatch(/image-version-retired$/);
    const replica = fx.r.paths.replica(
      { tenantId: fx.tenant.tenantId, imageId: image.imageId, version: 1 },
      "ds-default",
    );
    expect(await run("test", ["-f", replica]).then(() => true)).toBe(true);
    expectStatus(
      await fx.r.api("POST", `/v1/pools/${poolId}/recompose`, {
        key: fx.tenant.key,
        body: { imageVersion: v2 },
      }),
      202,
    );
    // Once no desktop reads through it, the retired version's replica goes.
    await waitFor("v1 replica removed", async () => {
      const left = await fx.r.region.app.ports.replicas.list(fx.tenant.tenantId, image.imageId, 1);
      return (
        left.length === 0 &&
        (await run("test", ["-f", replica]).then(
          () => false,
          () => true,
        ))
      );
    });
    expect(
      (await fx.r.api("DELETE", `/v1/images/${image.imageId}/versions/1`, { key: fx.tenant.key })).status,
    ).toBe(204);
    const got = expectStatus(
      await fx.r.api("GET", `/v1/images/${image.imageId}`, { key: fx.tenant.key }),
      200,
    );
    expect(got.versions.map((v: any) => v.version)).toEqual([v2]);
  });
});
