/**
 * Points a qcow2 at another backing file of the same format, as `qemu-img rebase -u -F qcow2`
 * does, by editing its header here instead of starting a qemu-img process (one less process per
 * step of a commit or an apply). Only the plain case is edited: an image that already has a
 * backing file recorded as qcow2 (its backing-format header extension), whose new name fits
 * where the old one is. Anything else answers false and the caller runs qemu-img.
 *
 * qcow2 layout (docs/interop/qcow2.txt in QEMU): big-endian header; backing_file_offset (u64) at
 * byte 8 and backing_file_size (u32) at 16; cluster_bits at 20; v3 header_length at 100; header
 * extensions (u32 type, u32 length, data padded to 8 bytes) from the header's end to a type-0
 * end marker; the backing file's name (not NUL-terminated) at backing_file_offset, in cluster 0.
 */
import { open } from "node:fs/promises";

const magic = 0x514649fb;
const backingFormatExtension = 0xe2792aca;
/** QEMU refuses longer names (and any that leave cluster 0). */
const maxNameBytes = 1023;

export async function setQcow2Backing(path: string, backing: string): Promise<boolean> {
  const file = await open(path, "r+");
  try {
    const head = Buffer.alloc(4096);
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    const edited = patchQcow2Backing(head, bytesRead, backing);
    if (!edited) return false;
    await file.write(head, 0, Math.max(bytesRead, edited.end), 0);
    return true;
  } finally {
    await file.close();
  }
}

/**
 * The same edit on a qcow2's first `bytesRead` bytes held in `head` (at least its first cluster's
 * header part): in place, answering where the edited bytes end, or undefined (nothing changed)
 * outside the plain case.
 */
export function patchQcow2Backing(
  head: Buffer,
  bytesRead: number,
  backing: string,
): { end: number } | undefined {
  const name = Buffer.from(backing, "utf8");
  if (bytesRead < 72 || head.readUInt32BE(0) !== magic) return undefined;
  const version = head.readUInt32BE(4);
  if ((version !== 2 && version !== 3) || (version === 3 && bytesRead < 104)) return undefined;
  const nameOffset = Number(head.readBigUInt64BE(8));
  const oldSize = head.readUInt32BE(16);
  const cluster = 2 ** head.readUInt32BE(20);
  if (nameOffset === 0 || oldSize === 0) return undefined;
  if (name.length === 0 || name.length > maxNameBytes || nameOffset + name.length > cluster) return undefined;
  const end = nameOffset + Math.max(oldSize, name.length);
  if (end > head.length || !hasQcow2BackingFormat(head, bytesRead, version, nameOffset)) return undefined;
  // The name where the old one was (its tail zeroed), then its length.
  head.fill(0, nameOffset, end);
  name.copy(head, nameOffset);
  head.writeUInt32BE(name.length, 16);
  return { end };
}

/** Whether the header extensions (all before the name) record the backing format "qcow2". */
function hasQcow2BackingFormat(head: Buffer, bytesRead: number, version: number, nameOffset: number) {
  let at = version === 3 ? head.readUInt32BE(100) : 72;
  while (at + 8 <= Math.min(bytesRead, nameOffset)) {
    const type = head.readUInt32BE(at);
    const length = head.readUInt32BE(at + 4);
    if (type === 0) return false;
    const data = at + 8;
    if (data + length > bytesRead) return false;
    if (type === backingFormatExtension) return head.toString("latin1", data, data + length) === "qcow2";
    at = data + Math.ceil(length / 8) * 8;
  }
  return false;
}
