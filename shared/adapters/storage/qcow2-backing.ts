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
  const name = Buffer.from(backing, "utf8");
  const file = await open(path, "r+");
  try {
    const head = Buffer.alloc(4096);
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    if (bytesRead < 72 || head.readUInt32BE(0) !== magic) return false;
    const version = head.readUInt32BE(4);
    if ((version !== 2 && version !== 3) || (version === 3 && bytesRead < 104)) return false;
    const nameOffset = Number(head.readBigUInt64BE(8));
    const oldSize = head.readUInt32BE(16);
    const cluster = 2 ** head.readUInt32BE(20);
    if (nameOffset === 0 || oldSize === 0) return false;
    if (name.length === 0 || name.length > maxNameBytes || nameOffset + name.length > cluster) return false;
    if (!hasQcow2BackingFormat(head, bytesRead, version, nameOffset)) return false;
    // The name where the old one was (its tail zeroed), then its length.
    const field = Buffer.alloc(Math.max(oldSize, name.length));
    name.copy(field);
    await file.write(field, 0, field.length, nameOffset);
    const size = Buffer.alloc(4);
    size.writeUInt32BE(name.length);
    await file.write(size, 0, 4, 16);
    return true;
  } finally {
    await file.close();
  }
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
