/**
 * Reading what a guest sees through a chain of qcow2 files (an image and its backing files), here
 * rather than by qemu-img processes: which file holds each guest cluster, from the files' own L1
 * and L2 tables (docs/interop/qcow2.txt in QEMU). Only the plain case is read this way: qcow2 v2
 * or v3 with clusters of 64 KiB to 2 MiB, no encryption, no compression, no extended L2 entries or
 * external data file, every backing file a qcow2. Anything else throws `UnsupportedQcow2`, and the
 * caller asks qemu-img.
 */
import { type FileHandle, open } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";

export class UnsupportedQcow2 extends Error {}

const magic = 0x514649fb;
/** A cluster's guest data: in `file` at `offset`, reads as zeros, or is not in this layer. */
export type ClusterSource = { file: FileHandle; offset: number } | "zero" | undefined;

export interface Qcow2Layer {
  path: string;
  file: FileHandle;
  virtualSize: number;
  clusterBytes: number;
  /** The backing file's name as the header records it (relative names are to the file's folder). */
  backingName?: string;
  /** Where the guest cluster holding `guestOffset` reads from in this layer. */
  lookup(guestOffset: number): Promise<ClusterSource>;
  /** Every guest offset (cluster start) this layer allocates or marks zero, in order. */
  clusters(): Promise<number[]>;
}

/** A qcow2 entry's host offset (bits 9-55), as a number: two 32-bit halves, not BigInt per entry. */
function entryAt(table: Buffer, index: number) {
  const hi = table.readUInt32BE(index * 8);
  const lo = table.readUInt32BE(index * 8 + 4);
  return { hi, lo, offset: (hi & 0x00ffffff) * 0x1_0000_0000 + (lo & 0xfffffe00) };
}

/** Opens one qcow2 file as a layer (the caller closes `file`). */
export async function openLayer(path: string): Promise<Qcow2Layer> {
  const file = await open(path, "r");
  try {
    const h = Buffer.alloc(112);
    const { bytesRead } = await file.read(h, 0, h.length, 0);
    if (bytesRead < 72 || h.readUInt32BE(0) !== magic) throw new Error(`${path} is not a qcow2 image`);
    const version = h.readUInt32BE(4);
    const clusterBits = h.readUInt32BE(20);
    if ((version !== 2 && version !== 3) || clusterBits < 16 || clusterBits > 21)
      throw new UnsupportedQcow2(`${path}: qcow2 v${version} with ${clusterBits}-bit clusters`);
    if (h.readUInt32BE(32) !== 0) throw new UnsupportedQcow2(`${path} is encrypted`);
    // v3 incompatible features beyond dirty (bit 0) and corrupt (bit 1) change how tables read.
    if (version === 3 && (bytesRead < 104 || (h.readBigUInt64BE(72) & ~3n) !== 0n))
      throw new UnsupportedQcow2(`${path} uses incompatible qcow2 features`);
    const virtualSize = Number(h.readBigUInt64BE(24));
    const clusterBytes = 2 ** clusterBits;
    const perL2 = clusterBytes / 8;
    const l1 = Buffer.alloc(h.readUInt32BE(36) * 8);
    await file.read(l1, 0, l1.length, Number(h.readBigUInt64BE(40)));
    const backingName = await backingNameOf(file, h);
    const tables = new Map<number, Promise<Buffer | undefined>>();
    const l2Table = (index: number) => {
      let table = tables.get(index);
      if (!table) {
        const at = index * 8 < l1.length ? entryAt(l1, index).offset : 0;
        table =
          at === 0
            ? Promise.resolve(undefined)
            : file.read(Buffer.alloc(clusterBytes), 0, clusterBytes, at).then((r) => r.buffer);
        tables.set(index, table);
      }
      return table;
    };
    const sourceOf = (entry: ReturnType<typeof entryAt>, guest: number): ClusterSource => {
      if (entry.hi & 0x40000000) throw new UnsupportedQcow2(`${path}: compressed clusters`);
      // v3's zero flag (bit 0), whether or not a host cluster is kept for it.
      if (version === 3 && entry.lo & 1) return "zero";
      if (entry.offset === 0) return undefined;
      return { file, offset: entry.offset + (guest % clusterBytes) };
    };
    return {
      path,
      file,
      virtualSize,
      clusterBytes,
      ...(backingName !== undefined ? { backingName } : {}),
      async lookup(guest) {
        const cluster = Math.floor(guest / clusterBytes);
        const table = await l2Table(Math.floor(cluster / perL2));
        return table ? sourceOf(entryAt(table, cluster % perL2), guest) : undefined;
      },
      async clusters() {
        const found: number[] = [];
        for (let i = 0; i * 8 < l1.length; i++) {
          const table = await l2Table(i);
          if (!table) continue;
          for (let j = 0; j < perL2; j++) {
            const guest = (i * perL2 + j) * clusterBytes;
            if (guest >= virtualSize) break;
            if (sourceOf(entryAt(table, j), guest) !== undefined) found.push(guest);
          }
        }
        return found;
      },
    };
  } catch (err) {
    await file.close();
    throw err;
  }
}

/** Where a layer's backing file is: its recorded name, relative names from the layer's folder. */
export const backingPathOf = (layer: Pick<Qcow2Layer, "path" | "backingName">) =>
  layer.backingName === undefined
    ? undefined
    : isAbsolute(layer.backingName)
      ? layer.backingName
      : join(dirname(layer.path), layer.backingName);

export interface Qcow2Chain {
  /** Top first. */
  layers: Qcow2Layer[];
  virtualSize: number;
  /** Where the guest's bytes at `guestOffset` (within one 64 KiB-aligned block) are read from. */
  source(guestOffset: number): Promise<ClusterSource>;
  close(): Promise<void>;
}

/**
 * The chain from `top` down to an image with no backing file. `topBacking` names the top's
 * backing file instead of its header (a downloaded delta, read where it landed, before it is put
 * beside the disks its header names).
 */
export async function openChain(top: string, topBacking?: string): Promise<Qcow2Chain> {
  const layers: Qcow2Layer[] = [];
  const close = () => Promise.all(layers.map((l) => l.file.close())).then(() => undefined);
  try {
    let path: string | undefined = top;
    while (path !== undefined) {
      if (layers.length > 256) throw new UnsupportedQcow2(`${top}: backing chain deeper than 256`);
      const layer = await openLayer(path);
      layers.push(layer);
      path = layers.length === 1 && topBacking !== undefined ? topBacking : backingPathOf(layer);
    }
  } catch (err) {
    await close();
    throw err;
  }
  const [first] = layers as [Qcow2Layer];
  return {
    layers,
    virtualSize: first.virtualSize,
    async source(guest) {
      for (const layer of layers) {
        // Past a backing file's end (a smaller backing file) the guest reads zeros.
        if (guest >= layer.virtualSize) return "zero";
        const found = await layer.lookup(guest);
        if (found !== undefined) return found;
      }
      return "zero";
    },
    close,
  };
}

/** The backing file's name the header `h` (read from `file`) records, if any. */
async function backingNameOf(file: FileHandle, h: Buffer): Promise<string | undefined> {
  const nameOffset = Number(h.readBigUInt64BE(8));
  const nameSize = h.readUInt32BE(16);
  if (nameOffset === 0 || nameSize === 0) return undefined;
  // QEMU refuses names longer than 1023 bytes.
  const name = Buffer.alloc(Math.min(nameSize, 1023));
  await file.read(name, 0, name.length, nameOffset);
  return name.toString("utf8");
}

/**
 * What a qcow2's header says of its virtual size and backing file (big-endian: the name's offset
 * at byte 8 and size at 16, the virtual size at 24), the header only read: no qemu-img process.
 */
export async function qcow2Header(path: string): Promise<{ virtualSize: number; backingName?: string }> {
  const file = await open(path, "r");
  try {
    const h = Buffer.alloc(32);
    const { bytesRead } = await file.read(h, 0, 32, 0);
    if (bytesRead < 32 || h.readUInt32BE(0) !== magic) throw new Error(`${path} is not a qcow2 image`);
    const virtualSize = Number(h.readBigUInt64BE(24));
    const backingName = await backingNameOf(file, h);
    return backingName === undefined ? { virtualSize } : { virtualSize, backingName };
  } finally {
    await file.close();
  }
}

/** The files of `top`'s chain, top first, from their headers. */
export async function chainFiles(top: string): Promise<string[]> {
  const files = [top];
  for (let path: string | undefined = top; files.length <= 256; ) {
    path = backingPathOf({ path, ...(await qcow2Header(path)) });
    if (path === undefined) return files;
    files.push(path);
  }
  throw new UnsupportedQcow2(`${top}: backing chain deeper than 256`);
}
