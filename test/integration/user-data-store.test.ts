/**
 * The user-data store's commit with real qemu-img: the session's overlay is only read (it becomes
 * the shipped delta as it is), and runs of the same commit at once (a job delivered twice) all
 * build the same version.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contentSha256 } from "../../shared/adapters/storage/content-checksum.ts";
import { qcow2UserDataStore } from "../../shared/adapters/storage/user-data-store.ts";
import { holdsPattern } from "./dr-harness.ts";

const run = promisify(execFile);
const fileSha256 = async (path: string) =>
  createHash("sha256")
    .update(await readFile(path))
    .digest("hex");
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pristine-user-data-store-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("qcow2 user-data store", () => {
  it("commits an overlay three times at once: one version, the overlay untouched and kept as the delta", async () => {
    const store = qcow2UserDataStore(join(dir, "store"));
    const ref = { tenantId: "t", userId: "u" };
    await store.ensureBlank(ref, 64 * 1024 * 1024);
    const overlay = await store.ensureOverlay(ref, "s1", 0);
    await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x3c 1M 2M", overlay]);
    const before = await fileSha256(overlay);

    const results = await Promise.all([1, 2, 3].map(() => store.commitOverlay(ref, "s1", 0)));
    expect(new Set(results.map((r) => r.sha256)).size).toBe(1);
    const disk = join(dir, "store", "t", "u", "disk-v1.qcow2");
    expect(await contentSha256(disk)).toBe(results[0]?.sha256);
    expect(await holdsPattern(disk, 0x3c, "1M", "2M")).toBe(true);
    // Only read: the overlay's bytes are as the session left them, and the delta is that file.
    expect(await fileSha256(overlay)).toBe(before);
    expect(await fileSha256(store.deltaPath(ref, 1))).toBe(before);
    const info = JSON.parse(
      (await run("qemu-img", ["info", "--output=json", store.deltaPath(ref, 1)])).stdout,
    );
    expect(info["full-backing-filename"] ?? info["backing-filename"]).toBe(
      join(dir, "store", "t", "u", "disk-v0.qcow2"),
    );
  });
});
