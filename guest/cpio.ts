/**
 * A "newc" cpio archive (what the kernel unpacks as an initramfs), written in memory. Device nodes
 * and root ownership are just header fields here, so building an initramfs needs neither root nor
 * the cpio tool. Timestamps are 0, so the same entries give the same bytes.
 */
export type CpioEntry =
  | { type: "dir"; path: string; mode?: number }
  | { type: "file"; path: string; data: Buffer; mode?: number }
  | { type: "symlink"; path: string; target: string }
  | { type: "char"; path: string; major: number; minor: number; mode?: number };

const typeBits = { dir: 0o040000, file: 0o100000, symlink: 0o120000, char: 0o020000 } as const;

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

function record(ino: number, mode: number, name: string, data: Buffer, rdev: [number, number] = [0, 0]) {
  const nameBytes = Buffer.from(`${name}\0`);
  const header =
    "070701" +
    [ino, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0].map(hex8).join("");
  const head = Buffer.concat([Buffer.from(header, "ascii"), nameBytes]);
  return [head, pad4(head.length), data, pad4(data.length)];
}

export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, "");
    if (e.type === "dir")
      parts.push(...record(ino++, typeBits.dir | (e.mode ?? 0o755), path, Buffer.alloc(0)));
    else if (e.type === "file") parts.push(...record(ino++, typeBits.file | (e.mode ?? 0o644), path, e.data));
    else if (e.type === "symlink")
      parts.push(...record(ino++, typeBits.symlink | 0o777, path, Buffer.from(e.target)));
    else
      parts.push(
        ...record(ino++, typeBits.char | (e.mode ?? 0o600), path, Buffer.alloc(0), [e.major, e.minor]),
      );
  }
  parts.push(...record(0, 0, "TRAILER!!!", Buffer.alloc(0)));
  return Buffer.concat(parts);
}
