/**
 * Importing a tenant's disk file, as a hostile tenant would try it. A tenant may import only from
 * its own folder under an import root; the file is opened without following links, checked to be
 * the opened file's real place in that folder, and copied from the open descriptor into a private
 * staging file. Everything after (format probe, checks, conversion) works on that private copy,
 * so swapping links or rewriting the file meanwhile changes nothing. Answers never name server
 * paths or quote qemu-img: that detail goes to the logs.
 */
import { randomBytes } from "node:crypto";
import { constants, createWriteStream } from "node:fs";
import { type FileHandle, mkdir, open, readlink, realpath, rm, stat } from "node:fs/promises";
import { isAbsolute, join, normalize } from "node:path";
import { pipeline } from "node:stream/promises";
import { invalid } from "../../domain/errors.ts";
import { logger } from "../../logger.ts";
import { isPlainSegment, isWithin } from "./paths.ts";
import { type QemuImageInfo, qemuInfo } from "./qemu-img.ts";

/** The one answer for a path that is missing, outside the tenant's folder, or a link: no probing. */
const noSuchDisk = () =>
  invalid("source.path", "no such disk file in your import folder (a regular file, not a link)");

/** The tenant's own folders under the import roots. */
const tenantImportFolders = (roots: string[], tenantId: string) =>
  isPlainSegment(tenantId) ? roots.map((root) => join(root, tenantId)) : [];

/** Where an operator's tools put a tenant's disks to import: its folder under the first root, made if missing. */
export async function prepareTenantImportFolder(roots: string[], tenantId: string): Promise<string> {
  const [folder] = tenantImportFolders(roots, tenantId);
  if (!folder) throw new Error(`no import folder for tenant ${tenantId}`);
  await mkdir(folder, { recursive: true });
  return folder;
}

/** Opens the tenant's file without following links; throws the one "no such disk" error otherwise. */
async function openTenantFile(roots: string[], tenantId: string, requested: string): Promise<FileHandle> {
  for (const folder of tenantImportFolders(roots, tenantId)) {
    const path = normalize(isAbsolute(requested) ? requested : join(folder, requested));
    if (!isWithin(folder, path) || path === folder) continue;
    const realFolder = await realpath(folder).catch(() => undefined);
    if (!realFolder) continue;
    const file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(
      () => undefined,
    );
    if (!file) continue;
    try {
      // The file really opened, wherever the folders on its way point: it must be the tenant's.
      const opened = await readlink(`/proc/self/fd/${file.fd}`);
      const stat = await file.stat();
      if (isWithin(realFolder, opened) && stat.isFile()) return file;
    } catch {
      // fall through to the one answer
    }
    await file.close();
  }
  throw noSuchDisk();
}

/** Copies exactly the tenant's validated file into a private staging file; `done` removes it. */
export async function stageTenantFile(
  roots: string[],
  tenantId: string,
  requested: string,
  stagingDir: string,
): Promise<{ path: string; done(): Promise<void> }> {
  const file = await openTenantFile(roots, tenantId, requested);
  await mkdir(stagingDir, { recursive: true, mode: 0o700 });
  const path = join(stagingDir, `import-${randomBytes(8).toString("hex")}`);
  try {
    await pipeline(
      file.createReadStream({ start: 0 }),
      createWriteStream(path, { flags: "wx", mode: 0o600 }),
    );
  } catch (err) {
    await rm(path, { force: true });
    throw err;
  } finally {
    await file.close().catch(() => undefined);
  }
  return { path, done: () => rm(path, { force: true }) };
}

export interface CheckedDisk {
  format: "qcow2" | "raw";
  virtualSizeBytes: number;
}

/**
 * Checks what qemu-img says of a disk file: qcow2 or raw, with no backing file and no external
 * data file (either would make qemu-img read another file on our behalf).
 */
function checkDisk(info: QemuImageInfo, sizeBytes: number): CheckedDisk {
  if (info.format !== "qcow2" && info.format !== "raw")
    throw invalid("source.path", `disk format ${info.format} is not supported (qcow2 or raw)`);
  if (info["backing-filename"])
    throw invalid(
      "source.path",
      "a qcow2 with its own backing file cannot be a golden image; flatten it first",
    );
  if (info["format-specific"]?.data?.["data-file"])
    throw invalid("source.path", "a qcow2 with an external data file cannot be a golden image");
  // qemu-img calls any file "raw": a real raw disk is a whole number of 512-byte sectors.
  if (info.format === "raw" && (sizeBytes === 0 || sizeBytes % 512 !== 0))
    throw invalid("source.path", "not a disk image (a raw disk is a non-empty multiple of 512 bytes)");
  return { format: info.format, virtualSizeBytes: info["virtual-size"] };
}

async function probe(path: string, ids: Record<string, unknown>, openFile?: number): Promise<QemuImageInfo> {
  return qemuInfo(path, openFile === undefined ? {} : { openFile }).catch((err: Error) => {
    logger.warn("import: not a readable disk image", { ...ids, error: err.message });
    throw invalid("source.path", "not a readable disk image");
  });
}

/** The publish-time check, on exactly the file opened (qemu-img reads it as its fd 3). */
export async function checkTenantSource(
  roots: string[],
  tenantId: string,
  requested: string,
  ids: Record<string, unknown> = {},
): Promise<CheckedDisk> {
  const file = await openTenantFile(roots, tenantId, requested);
  try {
    return checkDisk(await probe("/dev/fd/3", ids, file.fd), (await file.stat()).size);
  } finally {
    await file.close();
  }
}

/** The import-time check, on the private staged copy that is then converted. */
export async function checkStagedDisk(path: string, ids: Record<string, unknown>): Promise<CheckedDisk> {
  return checkDisk(await probe(path, ids), (await stat(path)).size);
}
