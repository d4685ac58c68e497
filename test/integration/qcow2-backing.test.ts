/**
 * The qcow2 backing-file edit done in TypeScript (setQcow2Backing) against qemu-img's own
 * `rebase -u`: the same header bytes, images that `qemu-img check` and `info` accept, data read
 * through the new backing file, and a refusal (so qemu-img runs) where the plain case does not hold.
 * Overlays made from a template (createQcow2Overlay) against `qemu-img create -b`: the same file.
 */
import { execFile } from "node:child_process";
import { copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contentSha256 } from "../../shared/adapters/storage/content-checksum.ts";
import { setQcow2Backing } from "../../shared/adapters/storage/qcow2-backing.ts";
import { createQcow2Overlay } from "../../shared/adapters/storage/qcow2-overlay.ts";

const run = promisify(execFile);
const qemuImg = async (...args: string[]) => (await run("qemu-img", args)).stdout;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pristine-qcow2-backing-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A base with a pattern, and an overlay on it holding another pattern elsewhere. */
async function chain(name: string) {
  const base = join(dir, `${name}-base.qcow2`);
  const overlay = join(dir, `${name}-overlay.qcow2`);
  await qemuImg("create", "-q", "-f", "qcow2", base, "64M");
  await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x11 0 1M", base]);
  await qemuImg("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay);
  await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x22 8M 1M", overlay]);
  return { base, overlay };
}

const info = async (path: string) =>
  JSON.parse(await qemuImg("info", "--output=json", "-U", path)) as Record<string, unknown>;

describe("setQcow2Backing", () => {
  it.each([
    ["a longer name", "copy-of-the-base-with-a-much-longer-name-than-before.qcow2"],
    ["a shorter name", "b.qcow2"],
  ])("writes the header qemu-img rebase -u writes (%s)", async (_, newName) => {
    const { base, overlay } = await chain(newName.length > 10 ? "long" : "short");
    const newBase = join(dir, newName);
    await copyFile(base, newBase);
    const byQemu = `${overlay}.qemu`;
    await copyFile(overlay, byQemu);
    await qemuImg("rebase", "-q", "-u", "-F", "qcow2", "-b", newBase, byQemu);

    expect(await setQcow2Backing(overlay, newBase)).toBe(true);

    // Cluster 0 (header, extensions, name) is byte for byte qemu-img's; so is the rest.
    expect((await readFile(overlay)).equals(await readFile(byQemu))).toBe(true);
    await qemuImg("check", "-q", overlay);
    const i = await info(overlay);
    expect(i["backing-filename"]).toBe(newBase);
    expect(i["backing-filename-format"]).toBe("qcow2");
    // Read through the new chain: the base's data and the overlay's.
    await run("qemu-io", ["-f", "qcow2", "-c", "read -P 0x11 0 1M", "-c", "read -P 0x22 8M 1M", overlay]);
    // Committed into the new base, the base holds both (what a user-data commit does).
    await qemuImg("commit", "-q", "-d", overlay);
    await run("qemu-io", ["-f", "qcow2", "-c", "read -P 0x11 0 1M", "-c", "read -P 0x22 8M 1M", newBase]);
    expect(await contentSha256(newBase)).toMatch(/^[0-9a-f]{64}$/);
  });

  it("refuses what it does not edit: no backing file, no qcow2 backing format, not a qcow2", async () => {
    const plain = join(dir, "plain.qcow2");
    await qemuImg("create", "-q", "-f", "qcow2", plain, "64M");
    expect(await setQcow2Backing(plain, join(dir, "x.qcow2"))).toBe(false);

    const { base } = await chain("raw-format");
    const raw = join(dir, "raw-base.img");
    await qemuImg("convert", "-O", "raw", base, raw);
    const onRaw = join(dir, "on-raw.qcow2");
    await qemuImg("create", "-q", "-f", "qcow2", "-F", "raw", "-b", raw, onRaw);
    expect(await setQcow2Backing(onRaw, join(dir, "y.img"))).toBe(false);
    expect((await info(onRaw))["backing-filename"]).toBe(raw);

    expect(await setQcow2Backing(raw, join(dir, "z.qcow2"))).toBe(false);
  });

  it("refuses a name qemu would not read (longer than 1023 bytes)", async () => {
    const { overlay, base } = await chain("too-long");
    expect(await setQcow2Backing(overlay, `/${"a".repeat(1100)}`)).toBe(false);
    expect((await info(overlay))["backing-filename"]).toBe(base);
  });
});

describe("createQcow2Overlay", () => {
  it.each([
    ["64 MiB", "64M", "b.qcow2"],
    ["1 GiB, a long name", "1G", "replica-of-a-golden-image-with-a-much-longer-name-v12.qcow2"],
    ["an odd size", "100000K", "odd.qcow2"],
  ])("writes the file qemu-img create -b writes (%s)", async (_, size, name) => {
    const base = join(dir, name);
    await qemuImg("create", "-q", "-f", "qcow2", base, size);
    await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x33 0 64k", base]);
    const byQemu = `${base}.overlay-by-qemu`;
    await qemuImg("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, byQemu);

    const mine = `${base}.overlay`;
    await createQcow2Overlay(base, mine);
    // A second overlay of the same size comes from the same template and is right too.
    const again = `${base}.overlay-again`;
    await createQcow2Overlay(base, again);

    const expected = await readFile(byQemu);
    expect((await readFile(mine)).equals(expected)).toBe(true);
    expect((await readFile(again)).equals(expected)).toBe(true);
    await qemuImg("check", "-q", mine);
    expect((await info(mine))["backing-filename"]).toBe(base);
    await run("qemu-io", ["-f", "qcow2", "-c", "read -P 0x33 0 64k", mine]);
  });

  it("fails as qemu-img does on a backing file that is missing or not a qcow2", async () => {
    await expect(createQcow2Overlay(join(dir, "missing.qcow2"), join(dir, "o1.qcow2"))).rejects.toThrow(
      /ENOENT/,
    );
    const raw = join(dir, "plain.img");
    await qemuImg("create", "-q", "-f", "raw", raw, "1M");
    await expect(createQcow2Overlay(raw, join(dir, "o2.qcow2"))).rejects.toThrow(/not a qcow2/);
  });
});
