import { createHash, randomBytes } from "node:crypto";
import { channel } from "node:diagnostics_channel";
import { type FileHandle, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openChain, type Qcow2Chain, UnsupportedQcow2 } from "./qcow2-chain.ts";
import { qemuImg } from "./qemu-img.ts";

const block = 64 * 1024;
/** A region's bytes: its digest is recomputed whole when a change touches any of it. */
const regionBytes = 16 * block;
/**
 * Read buffers, kept for the next checksum: a new buffer per checksum is memory outside the heap
 * that V8 answers with full garbage collections (13% of the DR bench's data path once).
 */
const readBuffers: Buffer[] = [];
const keptBuffers = 8;
const zeroBlock = Buffer.alloc(block);

/** Each checksum's path and wall-clock span, for whoever listens (the DR bench's stage table). */
export const checksumTimings = channel("pristine:content-checksum");
export interface ChecksumTiming {
  path: string;
  startedAt: number;
  endedAt: number;
}

/** A disk's content by region: region index -> sha256 of its non-zero 64 KiB blocks (none if all zero). */
export interface RegionDigests {
  virtualSize: number;
  regions: Map<number, Buffer>;
}

/**
 * The checksum of what a guest reads from a qcow2 and its backing files, not of the files:
 * `qemu-img` lays the same content out in different clusters, and a version is a chain in one
 * place and one flattened file in another. The disk is cut into 1 MiB regions; each region's
 * digest hashes every non-zero 64 KiB block with its guest offset, and the checksum hashes the
 * virtual size with every non-empty region's index and digest. A change then costs the regions it
 * touches (`withChanges`), not the disk.
 */
export function contentChecksum(d: RegionDigests): string {
  const hash = createHash("sha256").update(`qcow2-content-v2 ${d.virtualSize}\n`);
  const index = Buffer.alloc(4);
  for (const r of [...d.regions.keys()].sort((a, b) => a - b)) {
    index.writeUInt32BE(r);
    hash.update(index).update(d.regions.get(r) as Buffer);
  }
  return hash.digest("hex");
}

/** The content checksum of the disk `path` (with its backing chain), every region read. */
export async function contentSha256(path: string): Promise<string> {
  return contentChecksum(await timed(path, () => regionDigests(path)));
}

/**
 * The region digests of the disk `top` (with its chain), from its backing image's (`base`): only
 * the regions that `top` itself allocates or zeroes are read. `topBacking` names `top`'s backing
 * file instead of its header.
 */
export async function withChanges(
  top: string,
  base: RegionDigests,
  topBacking?: string,
): Promise<RegionDigests> {
  return timed(top, () => regionDigests(top, { base, ...(topBacking ? { topBacking } : {}) }));
}

async function timed<T>(path: string, work: () => Promise<T>): Promise<T> {
  const startedAt = Date.now();
  const result = await work();
  if (checksumTimings.hasSubscribers)
    checksumTimings.publish({ path, startedAt, endedAt: Date.now() } satisfies ChecksumTiming);
  return result;
}

async function regionDigests(
  top: string,
  opts: { base?: RegionDigests; topBacking?: string } = {},
): Promise<RegionDigests> {
  let chain: Qcow2Chain;
  try {
    chain = await openChain(top, opts.topBacking);
  } catch (err) {
    if (err instanceof UnsupportedQcow2) return viaConvert(top, opts.topBacking);
    throw err;
  }
  try {
    const { base } = opts;
    const incremental = base !== undefined && base.virtualSize === chain.virtualSize;
    const regions = incremental ? new Map(base.regions) : new Map<number, Buffer>();
    const touched = new Set<number>();
    for (const layer of incremental ? chain.layers.slice(0, 1) : chain.layers) {
      for (const start of await layer.clusters()) {
        const end = Math.min(start + layer.clusterBytes, chain.virtualSize);
        for (let r = Math.floor(start / regionBytes); r * regionBytes < end; r++) touched.add(r);
      }
    }
    const buf = readBuffers.pop() ?? Buffer.allocUnsafe(regionBytes);
    try {
      for (const r of touched) {
        const digest = await regionDigest(chain, r, buf);
        if (digest) regions.set(r, digest);
        else regions.delete(r);
      }
    } finally {
      if (readBuffers.length < keptBuffers) readBuffers.push(buf);
    }
    return { virtualSize: chain.virtualSize, regions };
  } catch (err) {
    if (err instanceof UnsupportedQcow2) return viaConvert(top, opts.topBacking);
    throw err;
  } finally {
    await chain.close();
  }
}

/**
 * One region's digest read through the chain, or undefined when it reads as zeros. Blocks that
 * follow each other in one file are read at once.
 */
async function regionDigest(chain: Qcow2Chain, region: number, buf: Buffer): Promise<Buffer | undefined> {
  const start = region * regionBytes;
  const end = Math.min(start + regionBytes, chain.virtualSize);
  const runs: { at: number; length: number; file: FileHandle; offset: number }[] = [];
  const zero: boolean[] = [];
  for (let at = start; at < end; at += block) {
    const source = await chain.source(at);
    const length = Math.min(block, end - at);
    if (source === "zero" || source === undefined) {
      zero.push(true);
      continue;
    }
    zero.push(false);
    const last = runs.at(-1);
    if (
      last &&
      last.file === source.file &&
      last.at + last.length === at &&
      last.offset + last.length === source.offset
    )
      last.length += length;
    else runs.push({ at, length, file: source.file, offset: source.offset });
  }
  if (runs.length === 0) return undefined;
  await Promise.all(
    runs.map(async (run) => {
      const { bytesRead } = await run.file.read(buf, run.at - start, run.length, run.offset);
      // Past a file's end (a cluster allocated but never written out) reads as zeros.
      if (bytesRead < run.length) buf.fill(0, run.at - start + bytesRead, run.at - start + run.length);
    }),
  );
  const hash = createHash("sha256");
  const offset = Buffer.alloc(8);
  let any = false;
  for (let i = 0, at = start; at < end; i++, at += block) {
    if (zero[i]) continue;
    const piece = buf.subarray(at - start, Math.min(at - start + block, end - start));
    if (piece.equals(zeroBlock.subarray(0, piece.length))) continue;
    offset.writeBigUInt64BE(BigInt(at));
    hash.update(offset).update(piece);
    any = true;
  }
  return any ? hash.digest() : undefined;
}

/**
 * What the tables here do not read (compressed clusters, small clusters, other features): a
 * standalone copy in qemu-img's default layout, whose digests are then computed as usual.
 */
async function viaConvert(top: string, topBacking?: string): Promise<RegionDigests> {
  const copy = join(tmpdir(), `pristine-checksum-${randomBytes(6).toString("hex")}.qcow2`);
  try {
    const source = topBacking
      ? [
          "--image-opts",
          `driver=qcow2,file.driver=file,file.filename=${optionValue(top)},backing.driver=qcow2,backing.file.driver=file,backing.file.filename=${optionValue(topBacking)}`,
        ]
      : ["-f", "qcow2", top];
    await qemuImg(["convert", "-U", ...source, "-O", "qcow2", copy]);
    return await regionDigests(copy);
  } finally {
    await rm(copy, { force: true });
  }
}

/** qemu-img's `--image-opts` value: commas in a value are doubled. */
const optionValue = (v: string) => v.replaceAll(",", ",,");

const digestsMagic = "pcdig002";
const entryBytes = 4 + 32;

/** Region digests as a file beside their disk (written under a temporary name, then renamed). */
export async function writeRegionDigests(path: string, d: RegionDigests): Promise<void> {
  const indices = [...d.regions.keys()].sort((a, b) => a - b);
  const out = Buffer.alloc(16 + indices.length * entryBytes);
  out.write(digestsMagic, 0, "latin1");
  out.writeBigUInt64BE(BigInt(d.virtualSize), 8);
  indices.forEach((r, i) => {
    out.writeUInt32BE(r, 16 + i * entryBytes);
    (d.regions.get(r) as Buffer).copy(out, 16 + i * entryBytes + 4);
  });
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await writeFile(tmp, out);
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** The digests a file holds, or undefined when it is missing or not such a file. */
export async function readRegionDigests(path: string): Promise<RegionDigests | undefined> {
  const data = await readFile(path).catch(() => undefined);
  if (!data || data.length < 16 || data.toString("latin1", 0, 8) !== digestsMagic) return undefined;
  if ((data.length - 16) % entryBytes !== 0) return undefined;
  const regions = new Map<number, Buffer>();
  for (let at = 16; at < data.length; at += entryBytes)
    regions.set(data.readUInt32BE(at), Buffer.from(data.subarray(at + 4, at + entryBytes)));
  return { virtualSize: Number(data.readBigUInt64BE(8)), regions };
}

/** The digests of the disk `path`, every region read. */
export const allRegionDigests = (path: string) => timed(path, () => regionDigests(path));
