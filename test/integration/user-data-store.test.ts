/**
 * The user-data store with real qemu-img: a version is the delta that made it on the version
 * before (the session's overlay, or the delta shipped from the peer), its content checksum is
 * computed from the regions the delta touches and equals a full read's (qemu-img's own map of
 * the flattened disk), runs of the same commit at once build one version, and deep chains are
 * flattened and pruned.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contentSha256 } from "../../shared/adapters/storage/content-checksum.ts";
import { flattenDepth, qcow2UserDataStore } from "../../shared/adapters/storage/user-data-store.ts";
import type { UserData } from "../../shared/domain/dr-model.ts";
import { pruneVersions } from "../../shared/domain/user-data-forks.ts";
import { referenceSha256 } from "../support/content-reference.ts";
import { holdsPattern } from "./dr-harness.ts";

const run = promisify(execFile);
const fileSha256 = async (path: string) =>
  createHash("sha256")
    .update(await readFile(path))
    .digest("hex");
const info = async (path: string) =>
  JSON.parse((await run("qemu-img", ["info", "--output=json", "-U", path])).stdout) as Record<
    string,
    unknown
  >;
/** The disk's content as one flattened file, checksummed by the oracle. */
async function flatSha256(path: string) {
  const flat = `${path}.flat`;
  await run("qemu-img", ["convert", "-U", "-O", "qcow2", path, flat]);
  try {
    return await referenceSha256(flat);
  } finally {
    await rm(flat, { force: true });
  }
}
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pristine-user-data-store-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** One session on `store`'s user: qemu-io commands into its overlay, then its commit. */
async function session(store: ReturnType<typeof qcow2UserDataStore>, from: number, writes: string[]) {
  const ref = { tenantId: "t", userId: "u" };
  const overlay = await store.ensureOverlay(ref, `s${from}`, from);
  await run("qemu-io", ["-f", "qcow2", ...writes.flatMap((w) => ["-c", w]), overlay]);
  const committed = await store.commitOverlay(ref, `s${from}`, from);
  await store.removeOverlay(ref, `s${from}`);
  return committed;
}

describe("qcow2 user-data store", () => {
  it("commits an overlay three times at once: one version, which is the overlay's file and the delta", async () => {
    const root = join(dir, "once");
    const store = qcow2UserDataStore(root);
    const ref = { tenantId: "t", userId: "u" };
    await store.ensureBlank(ref, 64 * 1024 * 1024);
    const overlay = await store.ensureOverlay(ref, "s1", 0);
    await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x3c 1M 2M", overlay]);
    const before = await fileSha256(overlay);

    const results = await Promise.all([1, 2, 3].map(() => store.commitOverlay(ref, "s1", 0)));
    expect(new Set(results.map((r) => r.sha256)).size).toBe(1);
    const disk = join(root, "t", "u", "disk-v1.qcow2");
    expect(await contentSha256(disk)).toBe(results[0]?.sha256);
    expect(await flatSha256(disk)).toBe(results[0]?.sha256);
    expect(await holdsPattern(disk, 0x3c, "1M", "2M")).toBe(true);
    // No copy: the version, the shipped delta and the session's overlay are one file, unchanged
    // (a retry still reads it by its own name), which reads version 0.
    const inode = (await stat(overlay)).ino;
    expect((await stat(disk)).ino).toBe(inode);
    expect((await stat(store.deltaPath(ref, 1))).ino).toBe(inode);
    expect(await fileSha256(overlay)).toBe(before);
    expect((await info(disk))["backing-filename"]).toBe(join(root, "t", "u", "disk-v0.qcow2"));
    await run("qemu-img", ["check", "-q", disk]);
  });

  it("checksums a chain of versions from the regions each delta touches, as a full read of the flattened disk does", async () => {
    const root = join(dir, "chain");
    const store = qcow2UserDataStore(root);
    const ref = { tenantId: "t", userId: "u" };
    await store.ensureBlank(ref, 256 * 1024 * 1024);
    const sessions = [
      ["write -P 0x11 0 3M", "write -P 0x12 100M 64k", "write -P 0x13 200M 100k"],
      // Within a region already holding data, across a region's edge, over earlier data.
      ["write -P 0x21 512k 8k", "write -P 0x22 1020k 8k", "write -P 0x23 100M 4k"],
      // Zeros written and discarded over earlier data: those regions read as zeros again.
      ["write -z 0 1M", "discard 200M 128k", "write -P 0 100M 64k"],
      // Data at the disk's very end, and a region written back to what it was.
      ["write -P 0x44 255M 1M", "write -P 0x11 0 1M"],
    ];
    for (const [from, writes] of sessions.entries()) {
      const { sha256 } = await session(store, from, writes);
      const disk = join(root, "t", "u", `disk-v${from + 1}.qcow2`);
      expect(sha256, `v${from + 1}`).toBe(await flatSha256(disk));
      expect(await contentSha256(disk)).toBe(sha256);
    }
    // Without version 4's kept digests, version 5's checksum is computed from a full read of 4.
    await rm(join(root, "t", "u", "disk-v4.digests"));
    const { sha256 } = await session(store, 4, ["write -P 0x55 50M 1M"]);
    expect(sha256).toBe(await flatSha256(join(root, "t", "u", "disk-v5.qcow2")));
  });

  it("applies the peer's delta as the next version, verified by the same checksum", async () => {
    const source = qcow2UserDataStore(join(dir, "apply-source"));
    const target = qcow2UserDataStore(join(dir, "apply-target"));
    const ref = { tenantId: "t", userId: "u" };
    await source.ensureBlank(ref, 64 * 1024 * 1024);
    const shipped = [];
    for (const [from, pattern] of [0x31, 0x32].entries()) {
      const { sha256 } = await session(source, from, [`write -P ${pattern} ${from * 8}M 2M`]);
      const incoming = target.incomingDeltaPath(ref, from + 1);
      await run("mkdir", ["-p", join(incoming, "..")]);
      await copyFile(source.deltaPath(ref, from + 1), incoming);
      shipped.push({ sha256, incoming });
    }
    for (const [from, { sha256, incoming }] of shipped.entries()) {
      const built = await target.applyDelta(ref, from, incoming, 64 * 1024 * 1024);
      expect(built.sha256).toBe(sha256);
      await built.install();
    }
    const disk = join(dir, "apply-target", "t", "u", "disk-v2.qcow2");
    expect(await flatSha256(disk)).toBe(shipped[1]?.sha256);
    // Each version reads this region's own predecessor, not the file the peer's delta named.
    expect((await info(disk))["backing-filename"]).toBe(join(dir, "apply-target", "t", "u", "disk-v1.qcow2"));
    expect(await holdsPattern(disk, 0x31, "0", "2M")).toBe(true);
    expect(await holdsPattern(disk, 0x32, "8M", "2M")).toBe(true);
  });

  it(`flattens a version whose chain is deeper than ${flattenDepth} files; the versions it no longer reads through are pruned`, async () => {
    const root = join(dir, "flatten");
    const store = qcow2UserDataStore(root);
    const ref = { tenantId: "t", userId: "u" };
    await store.ensureBlank(ref, 64 * 1024 * 1024);
    let latest = { sha256: "", version: 0 };
    for (let from = 0; from < flattenDepth; from++) {
      const { sha256 } = await session(store, from, [`write -P ${from + 1} ${from}M 1M`]);
      latest = { sha256, version: from + 1 };
      expect(await store.flattenIfDeep(ref, latest.version)).toBe(latest.version + 1 > flattenDepth);
    }
    const disk = join(root, "t", "u", `disk-v${latest.version}.qcow2`);
    expect(await info(disk)).not.toHaveProperty("backing-filename");
    expect(await contentSha256(disk)).toBe(latest.sha256);
    for (let v = 0; v < flattenDepth; v++) expect(await holdsPattern(disk, v + 1, `${v}M`, "1M")).toBe(true);

    const record = { tenantId: "t", userId: "u", version: latest.version, replicatedVersion: latest.version };
    await pruneVersions({ userDataStore: store }, record as UserData);
    // Kept: the latest (flat now) and the one before, which still reads through its own chain.
    expect((await store.listVersions(ref)).map((v) => v.version).sort((a, b) => a - b)).toEqual(
      Array.from({ length: flattenDepth + 1 }, (_, v) => v),
    );
    // The next version reads through the flat one only: everything below it goes.
    const next = await session(store, latest.version, ["write -P 0x77 40M 1M"]);
    await pruneVersions({ userDataStore: store }, {
      ...record,
      version: latest.version + 1,
      replicatedVersion: latest.version + 1,
    } as UserData);
    expect((await store.listVersions(ref)).sort((a, b) => a.version - b.version)).toEqual([
      { version: latest.version },
      { version: latest.version + 1, backingVersion: latest.version },
    ]);
    expect(await flatSha256(join(root, "t", "u", `disk-v${latest.version + 1}.qcow2`))).toBe(next.sha256);
  });
});
