import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, copyFile, link, mkdir, realpath, rename, rm, stat } from "node:fs/promises";
import { dirname, isAbsolute, join, relative } from "node:path";
import { invalid } from "../../domain/errors.ts";
import type { Desktop, ImageSource, ImageVersion } from "../../domain/model.ts";
import type { CloneTarget, ImportedImage, StorageDriver } from "../../ports.ts";
import { qemuImg, qemuInfo } from "./qemu-img.ts";

export interface Qcow2Layout {
  /** The region's image store: one imported qcow2 per image version. */
  imageStorePath: string;
  /** Datastores known without a lookup (the default local one): id -> folder. */
  datastores: Record<string, string>;
  /** Folders a publish may read source disks from; anything else is refused. */
  importRoots: string[];
}

type VersionRef = Pick<ImageVersion, "tenantId" | "imageId" | "version">;
type DesktopRef = Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "datastoreId">;

const tmpName = (path: string) => `${path}.${randomBytes(6).toString("hex")}.tmp`;

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Bytes a file really occupies (allocated blocks), not its apparent size. */
async function usedBytes(path: string): Promise<number> {
  const st = await stat(path).catch(() => undefined);
  return st ? st.blocks * 512 : 0;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Finds a registered datastore's folder (the worker reads it from the table). */
export type DatastoreLookup = (datastoreId: string) => Promise<string | undefined>;

export function qcow2Paths(layout: Qcow2Layout) {
  const datastore = (id: string) => {
    const path = layout.datastores[id];
    if (!path) throw new Error(`unknown datastore ${id}`);
    return path;
  };
  return {
    image: (v: VersionRef) => join(layout.imageStorePath, v.tenantId, v.imageId, `v${v.version}.qcow2`),
    replica: (v: VersionRef, datastoreId: string) =>
      join(datastore(datastoreId), "replicas", v.tenantId, `${v.imageId}-v${v.version}.qcow2`),
    desktop: (d: DesktopRef) =>
      join(datastore(d.datastoreId), "desktops", d.tenantId, d.poolId, `${d.desktopId}.qcow2`),
  };
}

/**
 * Linked clones with qemu-img: a replica is a read-only copy of an image version on a datastore,
 * and a desktop is a qcow2 overlay whose backing file is that replica. Every write goes to a
 * temporary name and is renamed (or hard-linked) into place, so a crash never leaves a half disk
 * under a real name and a retried job simply redoes its step.
 */
export function qcow2Driver(
  layout: Qcow2Layout,
  lookup: DatastoreLookup = async () => undefined,
): StorageDriver {
  // Folders of registered datastores are learnt on first use; a datastore's path does not move.
  const known: Record<string, string> = { ...layout.datastores };
  const paths = qcow2Paths({ ...layout, datastores: known });
  const locate = async (datastoreId: string) => {
    if (!known[datastoreId]) {
      const path = await lookup(datastoreId);
      if (!path) throw new Error(`unknown datastore ${datastoreId}`);
      known[datastoreId] = path;
    }
  };
  const replicasInFlight = new Map<string, Promise<{ created: boolean }>>();

  async function cloneWith(desktop: CloneTarget, make: (tmp: string) => Promise<unknown>) {
    await locate(desktop.datastoreId);
    const target = paths.desktop(desktop);
    await mkdir(dirname(target), { recursive: true });
    const tmp = tmpName(target);
    try {
      await make(tmp);
      await rename(tmp, target);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async function insideImportRoots(path: string): Promise<string> {
    if (!isAbsolute(path)) throw invalid("source.path", "must be an absolute path");
    const real = await realpath(path).catch(() => {
      throw invalid("source.path", `${path} does not exist`);
    });
    for (const root of layout.importRoots) {
      const realRoot = await realpath(root).catch(() => undefined);
      if (!realRoot) continue;
      const rel = relative(realRoot, real);
      if (!rel.startsWith("..") && !isAbsolute(rel)) return real;
    }
    throw invalid(
      "source.path",
      `${path} is outside the allowed import roots (${layout.importRoots.join(", ")})`,
    );
  }

  async function validateSource(source: ImageSource): Promise<void> {
    if (!("path" in source)) return;
    const path = await insideImportRoots(source.path);
    const st = await stat(path);
    if (!st.isFile()) throw invalid("source.path", `${source.path} is not a regular file`);
    const info = await qemuInfo(path).catch((err: Error) => {
      throw invalid("source.path", `not a readable disk image: ${err.message}`);
    });
    if (info.format !== "qcow2" && info.format !== "raw") {
      throw invalid("source.path", `disk format ${info.format} is not supported (qcow2 or raw)`);
    }
    if (info["backing-filename"]) {
      throw invalid(
        "source.path",
        "a qcow2 with its own backing file cannot be a golden image; flatten it first",
      );
    }
    // qemu-img calls any file "raw": a real raw disk is a whole number of 512-byte sectors.
    if (info.format === "raw" && (st.size === 0 || st.size % 512 !== 0)) {
      throw invalid("source.path", "not a disk image (a raw disk is a non-empty multiple of 512 bytes)");
    }
  }

  return {
    validateSource,

    async importImage(version): Promise<ImportedImage> {
      const target = paths.image(version);
      await mkdir(dirname(target), { recursive: true });
      const tmp = tmpName(target);
      try {
        if ("path" in version.source) {
          await validateSource(version.source);
          await qemuImg(["convert", "-q", "-O", "qcow2", version.source.path, tmp]);
        } else {
          await qemuImg(["create", "-q", "-f", "qcow2", tmp, `${version.source.blankSizeMiB}M`]);
        }
        await chmod(tmp, 0o444);
        const [sha256, info, st] = await Promise.all([sha256File(tmp), qemuInfo(tmp), stat(tmp)]);
        await rename(tmp, target);
        return { sha256, virtualSizeBytes: info["virtual-size"], fileBytes: st.size };
      } finally {
        await rm(tmp, { force: true });
      }
    },

    async removeImage(version) {
      await rm(paths.image(version), { force: true });
    },

    async ensureReplica(version, datastoreId) {
      await locate(datastoreId);
      const target = paths.replica(version, datastoreId);
      const inFlight = replicasInFlight.get(target);
      if (inFlight) {
        await inFlight;
        return { created: false };
      }
      const work = (async () => {
        if (await exists(target)) return { created: false };
        await mkdir(dirname(target), { recursive: true });
        const tmp = tmpName(target);
        try {
          await copyFile(paths.image(version), tmp);
          // A replica every desktop reads through must be the version, bit for bit.
          const sha256 = await sha256File(tmp);
          if (version.sha256 && sha256 !== version.sha256)
            throw new Error(
              `replica of ${version.imageId}@${version.version} on ${datastoreId}: sha256 mismatch`,
            );
          await chmod(tmp, 0o444);
          // link() fails if another worker got there first; theirs is identical, keep it.
          return await link(tmp, target).then(
            () => ({ created: true }),
            (err: NodeJS.ErrnoException) => {
              if (err.code !== "EEXIST") throw err;
              return { created: false };
            },
          );
        } finally {
          await rm(tmp, { force: true });
        }
      })();
      replicasInFlight.set(target, work);
      try {
        return await work;
      } finally {
        replicasInFlight.delete(target);
      }
    },

    async removeReplica(version, datastoreId) {
      await locate(datastoreId);
      await rm(paths.replica(version, datastoreId), { force: true });
    },

    createLinkedClone: (desktop) =>
      cloneWith(desktop, async (tmp) => {
        await locate(desktop.datastoreId);
        const replica = paths.replica({ ...desktop, version: desktop.imageVersion }, desktop.datastoreId);
        await qemuImg(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", replica, tmp]);
      }),

    // The baseline linked clones beat: a complete, independent copy (compact: unallocated stays so).
    createFullClone: (desktop) =>
      cloneWith(desktop, (tmp) =>
        qemuImg([
          "convert",
          "-q",
          "-O",
          "qcow2",
          paths.image({ ...desktop, version: desktop.imageVersion }),
          tmp,
        ]),
      ),

    async deleteDesktopDisk(desktop) {
      await locate(desktop.datastoreId);
      await rm(paths.desktop(desktop), { force: true });
    },

    async deltaBytes(desktop) {
      await locate(desktop.datastoreId);
      return usedBytes(paths.desktop(desktop));
    },

    async replicaBytes(version, datastoreId) {
      await locate(datastoreId);
      return usedBytes(paths.replica(version, datastoreId));
    },
  };
}

/** Puts a replicated image version's file in place, refusing one whose sha256 is not the source's. */
export async function installImageFile(target: string, file: string, sha256: string): Promise<void> {
  const actual = await sha256File(file);
  if (actual !== sha256) throw new Error(`replicated image ${target}: sha256 ${actual} != source ${sha256}`);
  await mkdir(dirname(target), { recursive: true });
  const tmp = tmpName(target);
  try {
    await copyFile(file, tmp);
    await chmod(tmp, 0o444);
    await rename(tmp, target);
  } finally {
    await rm(tmp, { force: true });
  }
}
