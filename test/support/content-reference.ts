/**
 * The content checksum's definition (content-checksum.ts), computed the slow, obvious way from
 * what qemu-img itself maps: the test oracle for the adapter's table reading and its incremental
 * (per-region) computation.
 */
import { execFile } from "node:child_process";
import { createHash, type Hash } from "node:crypto";
import { open } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);
const block = 64 * 1024;
const region = 16 * block;

interface Extent {
  start: number;
  length: number;
  data: boolean;
  zero: boolean;
  offset?: number;
  depth: number;
}

export async function referenceSha256(path: string): Promise<string> {
  const chain = JSON.parse(
    (await run("qemu-img", ["info", "--output=json", "-U", "--backing-chain", path])).stdout,
  ) as { filename: string; "virtual-size": number }[];
  const extents = JSON.parse(
    (await run("qemu-img", ["map", "--output=json", "-U", path])).stdout,
  ) as Extent[];
  const size = chain[0]?.["virtual-size"] ?? 0;
  const files = await Promise.all(chain.map((c) => open(c.filename, "r")));
  try {
    // Each 64 KiB block that any data extent reaches, assembled whole (zeros elsewhere).
    const blocks = new Map<number, Buffer>();
    for (const e of extents) {
      if (!e.data || e.zero || e.offset === undefined) continue;
      for (let at = e.start; at < e.start + e.length; ) {
        const b = Math.floor(at / block) * block;
        const end = Math.min(e.start + e.length, b + block);
        const buf = blocks.get(b) ?? Buffer.alloc(Math.min(block, size - b));
        blocks.set(b, buf);
        await files[e.depth]?.read(buf, at - b, end - at, e.offset + (at - e.start));
        at = end;
      }
    }
    const regions = new Map<number, Hash>();
    for (const b of [...blocks.keys()].sort((x, y) => x - y)) {
      const data = blocks.get(b) as Buffer;
      if (!data.some((byte) => byte !== 0)) continue;
      const r = Math.floor(b / region);
      const hash = regions.get(r) ?? createHash("sha256");
      regions.set(r, hash);
      const offset = Buffer.alloc(8);
      offset.writeBigUInt64BE(BigInt(b));
      hash.update(offset).update(data);
    }
    const total = createHash("sha256").update(`qcow2-content-v2 ${size}\n`);
    for (const r of [...regions.keys()].sort((x, y) => x - y)) {
      const index = Buffer.alloc(4);
      index.writeUInt32BE(r);
      total.update(index).update((regions.get(r) as Hash).digest());
    }
    return total.digest("hex");
  } finally {
    await Promise.all(files.map((f) => f.close()));
  }
}
