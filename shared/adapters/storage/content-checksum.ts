import { createHash } from "node:crypto";
import { channel } from "node:diagnostics_channel";
import { open } from "node:fs/promises";
import { qemuImg } from "./qemu-img.ts";

interface MapExtent {
  start: number;
  length: number;
  data: boolean;
  zero: boolean;
  offset?: number;
  depth?: number;
}

const block = 64 * 1024;
/** Bytes read at once: a whole number of blocks. */
const chunk = 64 * block;
/**
 * Read buffers, kept for the next checksum: a new 4 MiB buffer per checksum is memory outside the
 * heap that V8 answers with full garbage collections (13% of the DR bench's data path).
 */
const readBuffers: Buffer[] = [];
const keptBuffers = 8;

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

/**
 * What a checksum needs of a qcow2's header (big-endian: backing file offset at byte 8, virtual
 * size at 24), read here rather than by a qemu-img run, which costs a process start.
 */
export async function qcow2Header(path: string): Promise<{ virtualSize: number; hasBacking: boolean }> {
  const file = await open(path, "r");
  try {
    const header = Buffer.alloc(32);
    const { bytesRead } = await file.read(header, 0, 32, 0);
    if (bytesRead < 32 || header.readUInt32BE(0) !== 0x514649fb)
      throw new Error(`${path} is not a qcow2 image`);
    return { virtualSize: Number(header.readBigUInt64BE(24)), hasBacking: header.readBigUInt64BE(8) !== 0n };
  } finally {
    await file.close();
  }
}

async function checksum(path: string): Promise<string> {
  const info = await qcow2Header(path);
  if (info.hasBacking) throw new Error(`${path} has a backing file; flatten it first`);
  const extents =
    (await dataExtents(path)) ??
    (JSON.parse(await qemuImg(["map", "--output=json", "-U", path])) as MapExtent[]);
  const hash = createHash("sha256").update(`qcow2-content-v1 ${info.virtualSize}\n`);
  const zero = Buffer.alloc(block);
  // Read in large chunks: a read is a trip through the libuv threadpool, shared with every other
  // file operation of the process; one per 64 KiB piece made a checksum wait behind them all.
  const buf = readBuffers.pop() ?? Buffer.allocUnsafe(chunk);
  const offsetBytes = Buffer.alloc(8);
  const file = await open(path, "r");
  try {
    for (const e of extents) {
      if (!e.data || e.zero) continue;
      if (e.offset === undefined) throw new Error(`${path}: compressed clusters are not supported`);
      const extentEnd = e.start + e.length;
      for (let from = e.start; from < extentEnd; ) {
        // Chunks end on the grid too, so they never split a piece the extent does not.
        const to = Math.min(extentEnd, Math.floor((from + chunk) / block) * block);
        const { bytesRead } = await file.read(buf, 0, to - from, e.offset + (from - e.start));
        for (let at = from; at < to; ) {
          // Pieces end on the guest's 64 KiB grid, so how qemu-img splits extents does not matter.
          const end = Math.min(to, (Math.floor(at / block) + 1) * block);
          const piece = buf.subarray(Math.min(at - from, bytesRead), Math.min(end - from, bytesRead));
          if (!piece.equals(zero.subarray(0, piece.length))) {
            offsetBytes.writeBigUInt64BE(BigInt(at));
            hash.update(offsetBytes).update(piece);
          }
          at = end;
        }
        from = to;
      }
    }
  } finally {
    await file.close();
    if (readBuffers.length < keptBuffers) readBuffers.push(buf);
  }
  return hash.digest("hex");
}

/**
 * The data clusters of a plain qcow2 (no backing file), read from its L1 and L2 tables instead of
 * by a `qemu-img map` run, merged where they follow each other in the guest and in the file.
 * Only for clusters of 64 KiB or more (qemu-img's default), where cluster edges sit on the
 * checksum's grid so the extents' edges cannot change its pieces; anything else (smaller
 * clusters, extended L2 entries, an external data file, an unknown feature) answers undefined
 * and qemu-img maps it.
 */
async function dataExtents(path: string): Promise<MapExtent[] | undefined> {
  const file = await open(path, "r");
  try {
    const h = Buffer.alloc(104);
    const { bytesRead } = await file.read(h, 0, h.length, 0);
    const version = h.readUInt32BE(4);
    const clusterBits = h.readUInt32BE(20);
    // v3 incompatible features beyond dirty (bit 0) and corrupt (bit 1) change how tables read.
    if (bytesRead < 72 || (version !== 2 && version !== 3) || clusterBits < 16 || clusterBits > 21)
      return undefined;
    if (version === 3 && (bytesRead < 80 || (h.readBigUInt64BE(72) & ~3n) !== 0n)) return undefined;
    const size = Number(h.readBigUInt64BE(24));
    const cluster = 2 ** clusterBits;
    const l1Size = h.readUInt32BE(36);
    const l1Offset = Number(h.readBigUInt64BE(40));
    const perL2 = cluster / 8;
    const offsetMask = 0x00fffffffffffe00n;
    const l1 = Buffer.alloc(l1Size * 8);
    await file.read(l1, 0, l1.length, l1Offset);
    const l2 = Buffer.alloc(cluster);
    const extents: MapExtent[] = [];
    for (let i = 0; i < l1Size; i++) {
      const l2Offset = Number(l1.readBigUInt64BE(i * 8) & offsetMask);
      if (l2Offset === 0) continue;
      await file.read(l2, 0, cluster, l2Offset);
      for (let j = 0; j < perL2; j++) {
        const entry = l2.readBigUInt64BE(j * 8);
        const start = (i * perL2 + j) * cluster;
        if (start >= size) break;
        if (entry & (1n << 62n)) throw new Error(`${path}: compressed clusters are not supported`);
        const offset = Number(entry & offsetMask);
        // Unallocated (reads as zero, no backing) or a zero cluster: nothing to hash.
        if (offset === 0 || entry & 1n) continue;
        const length = Math.min(cluster, size - start);
        const last = extents.at(-1);
        if (last && last.start + last.length === start && (last.offset ?? 0) + last.length === offset)
          last.length += length;
        else extents.push({ start, length, data: true, zero: false, offset });
      }
    }
    return extents;
  } finally {
    await file.close();
  }
}
