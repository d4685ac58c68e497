/**
 * A new, empty qcow2 overlay on a qcow2 backing file, byte for byte what
 * `qemu-img create -f qcow2 -F qcow2 -b <backing>` writes, without a qemu-img process per overlay.
 * Such a file depends only on the backing file's name and virtual size: qemu-img makes one template
 * per virtual size (with a placeholder name, once per process), and each overlay is that template
 * with the real name put in (see qcow2-backing.ts). Linked clones, refreshes and users' session
 * overlays are all made this way: in a logon storm a process start per disk was most of its cost.
 */
import { randomBytes } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { patchQcow2Backing } from "./qcow2-backing.ts";
import { qcow2Header } from "./qcow2-chain.ts";
import { qemuImg } from "./qemu-img.ts";

const templates = new Map<number, Promise<Buffer>>();

function template(virtualSize: number): Promise<Buffer> {
  let made = templates.get(virtualSize);
  if (!made) {
    made = (async () => {
      const file = join(tmpdir(), `pristine-overlay-${randomBytes(6).toString("hex")}.qcow2`);
      try {
        // -u: the placeholder backing file is not opened (the size is given).
        await qemuImg([
          "create",
          "-q",
          "-f",
          "qcow2",
          "-F",
          "qcow2",
          "-u",
          "-b",
          "/template",
          file,
          `${virtualSize}`,
        ]);
        return await readFile(file);
      } finally {
        await rm(file, { force: true });
      }
    })();
    templates.set(virtualSize, made);
    made.catch(() => templates.delete(virtualSize));
  }
  return made;
}

/** Writes the overlay to `target` (a temporary name the caller renames into place). */
export async function createQcow2Overlay(backing: string, target: string): Promise<void> {
  // Reading the header also checks what qemu-img would: the backing file is there and is qcow2.
  const { virtualSize } = await qcow2Header(backing);
  const bytes = Buffer.from(await template(virtualSize));
  if (patchQcow2Backing(bytes, bytes.length, backing)) {
    await writeFile(target, bytes);
    return;
  }
  await qemuImg(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing, target]);
}
