/**
 * The storage adapters' speed-ups keep their answers: qemu-img run through the launcher answers
 * as a direct run does without forking this process, the content checksum read in large chunks
 * is the per-64-KiB-piece definition, and a blank disk's checksum is shared by its size.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contentSha256 } from "../../shared/adapters/storage/content-checksum.ts";
import { qemuImg } from "../../shared/adapters/storage/qemu-img.ts";
import { qcow2UserDataStore } from "../../shared/adapters/storage/user-data-store.ts";
import { referenceSha256 } from "../support/content-reference.ts";

const run = promisify(execFile);
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pristine-launcher-"));
});
afterAll(async () => {
  delete process.env.PRISTINE_LAUNCHER;
  await rm(dir, { recursive: true, force: true });
});

describe("storage adapters", () => {
  it("runs qemu-img through the launcher with a direct run's answers and errors, without forking this process", async () => {
    const disk = join(dir, "info.qcow2");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", disk, "64M"]);
    process.env.PRISTINE_LAUNCHER = "off";
    const direct = await qemuImg(["info", "--output=json", "-U", disk]);
    const directError = await qemuImg(["info", join(dir, "missing.qcow2")]).catch((e: Error) => e.message);
    // What a spawn costs the caller's thread grows with the caller's memory: hold some.
    const held = Array.from({ length: 200 }, () => Buffer.alloc(1024 * 1024, 1));
    const syncMs = async () => {
      let blocked = 0;
      const runs: Promise<string>[] = [];
      for (let i = 0; i < 10; i++) {
        const t = performance.now();
        runs.push(qemuImg(["info", "--output=json", "-U", disk]));
        blocked += performance.now() - t;
      }
      await Promise.all(runs);
      return blocked;
    };
    const directBlocked = await syncMs();
    delete process.env.PRISTINE_LAUNCHER;
    await qemuImg(["--version"]); // the launcher is started once, not per run
    const launchedBlocked = await syncMs();
    expect(held.length).toBe(200);

    expect(await qemuImg(["info", "--output=json", "-U", disk])).toBe(direct);
    const launchedError = await qemuImg(["info", join(dir, "missing.qcow2")]).catch((e: Error) => e.message);
    expect(launchedError).toBe(directError);
    expect(launchedError).toMatch(/^qemu-img info failed: .*missing\.qcow2/);
    expect(launchedBlocked).toBeLessThan(directBlocked / 3);
  });

  it("spawns with this process's environment as it is at each run (a PATH changed later counts)", async () => {
    await qemuImg(["--version"]);
    const shim = join(dir, "shim");
    await mkdir(shim, { recursive: true });
    await writeFile(join(shim, "qemu-img"), "#!/bin/sh\necho 'qemu-img: the shim' >&2; exit 1\n", {
      mode: 0o755,
    });
    const path = process.env.PATH;
    process.env.PATH = `${shim}:${path}`;
    try {
      await expect(qemuImg(["--version"])).rejects.toThrow("qemu-img --version failed: qemu-img: the shim");
    } finally {
      process.env.PATH = path;
    }
    expect(await qemuImg(["--version"])).toMatch(/^qemu-img version/);
  });

  it("computes the content checksum in large reads exactly as the per-piece definition", async () => {
    // 4 KiB clusters: extents that start and end off the 64 KiB grid; one extent larger than a read.
    const disk = join(dir, "small-clusters.qcow2");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", disk, "300M"]);
    await run("qemu-io", ["-f", "qcow2", "-c", "write -P 7 4096 10M", "-c", "write -P 9 20M 5000k", disk]);
    await run("qemu-io", ["-f", "qcow2", "-c", "write -z 21M 4k", "-c", "write -P 0 40M 64k", disk]);
    await run("qemu-io", ["-f", "qcow2", "-c", "write -P 3 100M 8k", disk]);
    const sha = await contentSha256(disk);
    expect(sha).toBe(await referenceSha256(disk));
    // The content, not the file: another layout of the same data hashes the same.
    const copy = join(dir, "copy.qcow2");
    await run("qemu-img", ["convert", "-O", "qcow2", "-o", "cluster_size=4096", disk, copy]);
    expect(await contentSha256(copy)).toBe(sha);
    await run("qemu-io", ["-f", "qcow2", "-c", "write -P 8 5M 4k", copy]);
    expect(await contentSha256(copy)).not.toBe(sha);
  });

  it("reads a default qcow2's own tables as qemu-img maps them: data, zero and discarded clusters, v2 and v3", async () => {
    for (const opts of ["compat=1.1", "compat=0.10", "cluster_size=2M"]) {
      const disk = join(dir, `tables-${opts}.qcow2`);
      await run("qemu-img", ["create", "-q", "-f", "qcow2", "-o", opts, disk, "3G"]);
      const writes = ["write -P 5 0 9M", "write -z 2M 1M", "write -P 1 600M 20M", "discard 610M 1M"];
      await run("qemu-io", ["-f", "qcow2", ...writes.flatMap((w) => ["-c", w]), disk]);
      await run("qemu-io", ["-f", "qcow2", "-c", "write -P 2 1100M 64k", "-c", "write -P 3 2999M 1M", disk]);
      expect(await contentSha256(disk)).toBe(await referenceSha256(disk));
    }
  });

  it("gives every blank disk of one size one checksum, computed from the file's own size", async () => {
    const store = qcow2UserDataStore(join(dir, "userdata"));
    const a = await store.ensureBlank({ tenantId: "t", userId: "a" }, 256 * 1024 * 1024);
    const b = await store.ensureBlank({ tenantId: "t", userId: "b" }, 256 * 1024 * 1024);
    const other = await store.ensureBlank({ tenantId: "t", userId: "c" }, 128 * 1024 * 1024);
    expect(b).toBe(a);
    expect(await store.contentSha256({ tenantId: "t", userId: "b" }, 0)).toBe(a);
    expect(other).not.toBe(a);
    expect(other).toBe(await referenceSha256(join(dir, "userdata", "t", "c", "disk-v0.qcow2")));
  });
});
