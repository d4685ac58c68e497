import { createHash } from "node:crypto";
import { channel } from "node:diagnostics_channel";
import { open } from "node:fs/promises";
import { qemuImg, qemuInfo } from "./qemu-img.ts";

interface MapExtent {
  start: number;
  length: number;
  data: boolean;
  zero: boolean;
  offset?: number;
  depth?: number;
}

const block = 64 * 1024;

/** Each checksum's path and wall-clock span, for whoever listens (the DR bench's stage table). */
export const checksumTimings = channel("pristine:content-checksum");
export interface ChecksumTiming {
  path: string;
  startedAt: number;
  endedAt: number;
}

/**
 * A checksum of what a guest reads from a qcow2 (virtual size plus every non-zero 64 KiB block
 * and its guest offset), not of the file: `qemu-img commit` of the same delta into identical
 * bases gives files whose clusters are laid out in a different order, so file hashes differ
 * between regions while the content is the same. The image must be standalone (no backing file).
 */
export async function contentSha256(path: string): Promise<string> {
  const startedAt = Date.now();
  const sha256 = await checksum(path);
  if (checksumTimings.hasSubscribers)
    checksumTimings.publish({ path, startedAt, endedAt: Date.now() } satisfies ChecksumTiming);
  return sha256;
}

async function checksum(path: string): Promise<string> {
  const info = await qemuInfo(path);
  if (info["backing-filename"]) throw new Error(`${path} has a backing file; flatten it first`);
  const extents = JSON.parse(await qemuImg(["map", "--output=json", "-U", path])) as MapExtent[];
  const hash = createHash("sha256").update(`qcow2-content-v1 ${info["virtual-size"]}\n`);
  const zero = Buffer.alloc(block);
  const buf = Buffer.alloc(block);
  const offsetBytes = Buffer.alloc(8);
  const file = await open(path, "r");
  try {
    for (const e of extents) {
      if (!e.data || e.zero) continue;
      if (e.offset === undefined) throw new Error(`${path}: compressed clusters are not supported`);
      for (let at = e.start; at < e.start + e.length; ) {
        // Pieces end on the guest's 64 KiB grid, so how qemu-img splits extents does not matter.
        const end = Math.min(e.start + e.length, (Math.floor(at / block) + 1) * block);
        const len = end - at;
        const { bytesRead } = await file.read(buf, 0, len, e.offset + (at - e.start));
        const piece = buf.subarray(0, bytesRead);
        if (!piece.equals(zero.subarray(0, bytesRead))) {
          offsetBytes.writeBigUInt64BE(BigInt(at));
          hash.update(offsetBytes).update(piece);
        }
        at = end;
      }
    }
  } finally {
    await file.close();
  }
  return hash.digest("hex");
}
