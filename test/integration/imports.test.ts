/**
 * Image imports as a hostile tenant tries them: every one of these was published as a READY
 * image version by tenant B once. Each tenant imports from its own folder only, exactly the file
 * that was checked, and answers name no server path.
 */
import { readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { userDataPaths } from "../../shared/adapters/storage/user-data-store.ts";
import {
  expectStatus,
  importPath,
  newTenant,
  readyImage,
  readyPool,
  run,
  useTenantRegion,
  waitFor,
} from "./harness.ts";

const fx = useTenantRegion();
let b: { tenantId: string; key: string };
let imageOfB: string;
let aImage: { imageId: string; version: number };
let aPool: string;

beforeAll(async () => {
  b = await newTenant(fx.r, "tenant-b");
  imageOfB = expectStatus(
    await fx.r.api("POST", "/v1/images", { key: b.key, body: { name: "loot" } }),
    201,
  ).imageId;
  // Tenant A's things: a staged import, its image-store file, a replica, a user's data disk.
  const staged = await importPath(fx.r, fx.tenant.tenantId, "a-golden.qcow2");
  await run("qemu-img", ["create", "-q", "-f", "qcow2", staged, "16M"]);
  aImage = await readyImage(fx.r, fx.tenant.key, { path: staged });
  aPool = await readyPool(fx.r, fx.tenant.key, aImage.imageId, 1);
  const s = expectStatus(
    await fx.r.api("POST", `/v1/pools/${aPool}/logons`, { key: fx.tenant.key, body: { userId: "ann" } }),
    200,
  );
  await waitFor("ann's data attached", async () => {
    const got = await fx.r.api("GET", `/v1/sessions/${s.sessionId}`, { key: fx.tenant.key });
    return got.body.userData?.state === "ATTACHED";
  });
});

const publishAsB = (path: string) =>
  fx.r.api("POST", `/v1/images/${imageOfB}/versions`, { key: b.key, body: { source: { path } } });

async function versionsOfB() {
  return expectStatus(await fx.r.api("GET", `/v1/images/${imageOfB}`, { key: b.key }), 200).versions as any[];
}

describe("tenant B cannot import tenant A's files or the server's", () => {
  it("another tenant's staged import, image-store file, replica, user data and the database are refused alike", async () => {
    const a = { tenantId: fx.tenant.tenantId, imageId: aImage.imageId, version: aImage.version };
    const database = join(fx.r.dataDir, "dynamodb-shared-local-instance.db");
    await writeFile(database, Buffer.alloc(64 * 1024, 7));
    const userData = fx.r.region.app.config.dr?.userDataPath ?? "";
    const targets = [
      await importPath(fx.r, fx.tenant.tenantId, "a-golden.qcow2"),
      `../${fx.tenant.tenantId}/a-golden.qcow2`,
      fx.r.paths.image(a),
      fx.r.paths.replica(a, "ds-default"),
      userDataPaths(userData).disk({ tenantId: fx.tenant.tenantId, userId: "ann" }, 0),
      database,
    ];
    const answers = [];
    for (const path of targets) {
      const res = await publishAsB(path);
      expect(res.status, path).toBe(400);
      answers.push(res.body.detail);
    }
    // One answer for all: nothing tells B whether a path exists.
    expect(new Set(answers).size).toBe(1);
    expect(await versionsOfB()).toEqual([]);
  });

  it("a qcow2 whose external data file names /etc/shadow is refused", async () => {
    const evil = await importPath(fx.r, b.tenantId, "evil.qcow2");
    const data = await importPath(fx.r, b.tenantId, "evil.data");
    await writeFile(data, Buffer.alloc(1024 * 1024));
    await run("qemu-img", ["create", "-q", "-f", "qcow2", "-o", `data_file=${data}`, evil, "1M"]);
    // Point the header at /etc/shadow: the data file's name is stored as a string in the header.
    const image = await readFile(evil);
    const at = image.indexOf(Buffer.from(data));
    expect(at).toBeGreaterThan(0);
    const shadow = Buffer.alloc(data.length, 0);
    Buffer.from("/etc/shadow").copy(shadow);
    shadow.copy(image, at);
    await writeFile(evil, image);
    const res = await publishAsB(evil);
    expect(res.status).toBe(400);
    expect(res.body.detail).toMatch(/external data file/);
    expect(await versionsOfB()).toEqual([]);
  });

  it("a link swapped every 2 ms never gets another file imported", async () => {
    const benign = await importPath(fx.r, b.tenantId, "benign.raw");
    await writeFile(benign, Buffer.alloc(1024 * 1024, 0x41));
    const link = await importPath(fx.r, b.tenantId, "swap.raw");
    const tmpLink = `${link}.next`;
    let flip = false;
    let running = true;
    const swapper = (async () => {
      while (running) {
        await rm(tmpLink, { force: true });
        await symlink(flip ? "/etc/shadow" : benign, tmpLink);
        await rename(tmpLink, link);
        flip = !flip;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    try {
      for (let i = 0; i < 17; i++) await publishAsB(link);
    } finally {
      running = false;
      await swapper;
    }
    await waitFor("B's imports settled", async () =>
      (await versionsOfB()).every((v) => v.state !== "PUBLISHING"),
    );
    // Nothing but the benign megabyte ever became an image of B's.
    for (const v of await versionsOfB())
      if (v.state === "READY") expect(v.virtualSizeBytes).toBe(1024 * 1024);
  });

  it("missing and outside paths get the same answer, and answers quote no server path or tool", async () => {
    const details = [];
    for (const path of ["/etc/shadow", "/nonexistent/disk.qcow2", "missing.qcow2", "../x/y.qcow2"]) {
      const res = await publishAsB(path);
      expect(res.status, path).toBe(400);
      expect(res.body.field).toBe("source.path");
      details.push(res.body.detail);
    }
    expect(new Set(details).size).toBe(1);
    const text = await importPath(fx.r, b.tenantId, "notes.txt");
    await writeFile(text, "not a disk\n");
    const res = await publishAsB("notes.txt");
    expect(res.status).toBe(400);
    expect(res.body.detail).not.toContain(fx.r.dataDir);
    expect(res.body.detail).not.toMatch(/qemu-img|Could not open/i);
  });
});

it("a tenant imports from its own folder, by name or by absolute path", async () => {
  const raw = await importPath(fx.r, b.tenantId, "mine.raw");
  await writeFile(raw, Buffer.alloc(2 * 1024 * 1024, 0x42));
  const byName = expectStatus(await publishAsB("mine.raw"), 202);
  const byPath = expectStatus(await publishAsB(raw), 202);
  await waitFor("both READY", async () => {
    const vs = await versionsOfB();
    return [byName.version, byPath.version].every((n) => vs.find((v) => v.version === n)?.state === "READY");
  });
});
