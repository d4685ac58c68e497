import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, copyFile, link, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Desktop, ImageSource, ImageVersion } from "../../domain/model.ts";
import type {
  CloneTarget,
  DesktopDiskFile,
  DesktopDiskRef,
  ImportedImage,
  StorageDriver,
} from "../../ports/index.ts";
import { checkStagedDisk, checkTenantSource, stageTenantFile } from "./image-import.ts";
import { pathUnder } from "./paths.ts";
import { createQcow2Overlay } from "./qcow2-overlay.ts";
import { qemuImg, qemuInfo } from "./qemu-img.ts";

export interface Qcow2Layout {
  /** The region's image store: one imported qcow2 per image version. */
  imageStorePath: string;
  /** Datastores known without a lookup (the default local one): id -> folder. */
  datastores: Record<string, string>;
  /**
   * Where tenants put disks to import: each tenant only ever reads its own folder
   * `<root>/<tenantId>/`. Never the data dir itself, the image store, datastores or user data.
   */
  importRoots: string[];
}

type VersionRef = Pick<ImageVersion, "tenantId" | "imageId" | "version">;

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

/** A desktop's disk file of one generation (generation 0: the name desktops had before fencing). */
const diskFileName = (desktopId: string, generation: number | undefined) =>
  generation ? `${desktopId}.g${generation}.qcow2` : `${desktopId}.qcow2`;

/** A desktop disk's file name (with a temporary file's suffix): desktop id, generation, partial. */
const diskFilePattern = /^([^.]+)(?:\.g(\d+))?\.qcow2(\.[0-9a-f]+\.tmp)?$/;

/** The names under a folder (none when it is not there). */
const namesIn = (folder: string) => readdir(folder).catch(() => [] as string[]);

export function qcow2Paths(layout: Qcow2Layout) {
  const datastore = (id: string) => {
    const path = layout.datastores[id];
    if (!path) throw new Error(`unknown datastore ${id}`);
    return path;
  };
  const poolFolder = (d: Pick<Desktop, "tenantId" | "poolId" | "datastoreId">) =>
    pathUnder(datastore(d.datastoreId), "desktops", d.tenantId, d.poolId);
  return {
    image: (v: VersionRef) => pathUnder(layout.imageStorePath, v.tenantId, v.imageId, `v${v.version}.qcow2`),
    replica: (v: VersionRef, datastoreId: string) =>
      pathUnder(datastore(datastoreId), "replicas", v.tenantId, `${v.imageId}-v${v.version}.qcow2`),
    poolFolder,
    /** The desktop's disk of its current generation. */
    desktop: (d: DesktopDiskRef) => join(poolFolder(d), diskFileName(d.desktopId, d.generation)),
    /** Private staging of imports, out of every tenant's reach. */
    staging: join(layout.imageStorePath, ".staging"),
  };
}

/**
 * Linked clones with qemu-img: a replica is a read-only copy of an image version on a datastore,
 * and a desktop is a qcow2 overlay whose backing file is that replica. Every write goes to a
 * temporary name and is renamed (or hard-linked) into place, so a crash never leaves a half disk
 * under a real name and a retried job simply redoes its step. A desktop's disk file is named after
 * the generation of the job that made it, so a stale job only ever writes a file nobody uses.
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

  /** Builds a version's image-store file (to `tmp`) from its source. */
  async function importInto(
    version: Pick<ImageVersion, "tenantId" | "imageId" | "version" | "source">,
    tmp: string,
  ) {
    const source = version.source;
    if (!("path" in source)) return qemuImg(["create", "-q", "-f", "qcow2", tmp, `${source.blankSizeMiB}M`]);
    const ids = { tenantId: version.tenantId, imageId: version.imageId, version: version.version };
    const staged = await stageTenantFile(layout.importRoots, version.tenantId, source.path, paths.staging);
    try {
      const { format } = await checkStagedDisk(staged.path, ids);
      return await qemuImg(["convert", "-q", "-f", format, "-O", "qcow2", staged.path, tmp]);
    } finally {
      await staged.done();
    }
  }

  return {
    async validateSource(tenantId: string, source: ImageSource) {
      if (!("path" in source)) return { virtualSizeBytes: source.blankSizeMiB * 1024 * 1024 };
      const checked = await checkTenantSource(layout.importRoots, tenantId, source.path, { tenantId });
      return { virtualSizeBytes: checked.virtualSizeBytes };
    },

    async importImage(version): Promise<ImportedImage> {
      const target = paths.image(version);
      await mkdir(dirname(target), { recursive: true });
      const tmp = tmpName(target);
      try {
        await importInto(version, tmp);
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

    async hasReplica(version, datastoreId) {
      await locate(datastoreId);
      return exists(paths.replica(version, datastoreId));
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
        const replica = paths.replica({ ...desktop, version: desktop.imageVersion }, desktop.datastoreId);
        await createQcow2Overlay(replica, tmp);
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

    async deleteDesktopDisk(desktop, opts = {}) {
      await locate(desktop.datastoreId);
      const folder = paths.poolFolder(desktop);
      if (opts.onlyGeneration !== undefined) {
        await rm(join(folder, diskFileName(desktop.desktopId, opts.onlyGeneration)), { force: true });
        return;
      }
      const keep =
        opts.keepGeneration === undefined ? undefined : diskFileName(desktop.desktopId, opts.keepGeneration);
      const names = await readdir(folder).catch(() => [] as string[]);
      const ofDesktop = new RegExp(`^${desktop.desktopId}(\\.g\\d+)?\\.qcow2(\\.[0-9a-f]+\\.tmp)?$`);
      await Promise.all(
        names
          .filter((name) => ofDesktop.test(name) && name !== keep)
          .map((name) => rm(join(folder, name), { force: true })),
      );
    },

    diskPath(desktop) {
      return paths.desktop(desktop);
    },

    async deltaBytes(desktop) {
      await locate(desktop.datastoreId);
      return usedBytes(paths.desktop(desktop));
    },

    async hasDesktopDisk(desktop) {
      await locate(desktop.datastoreId);
      return exists(paths.desktop(desktop));
    },

    async listDesktopDisks(datastoreId) {
      await locate(datastoreId);
      const root = pathUnder(known[datastoreId] as string, "desktops");
      const found: DesktopDiskFile[] = [];
      for (const tenantId of await namesIn(root))
        for (const poolId of await namesIn(join(root, tenantId))) {
          const folder = paths.poolFolder({ tenantId, poolId, datastoreId });
          for (const name of await namesIn(folder)) {
            const m = diskFilePattern.exec(name);
            const st = m && (await stat(join(folder, name)).catch(() => undefined));
            if (!m || !st?.isFile()) continue;
            found.push({
              datastoreId,
              tenantId,
              poolId,
              desktopId: m[1] as string,
              generation: Number(m[2] ?? 0),
              name,
              partial: m[3] !== undefined,
              modifiedAt: st.mtime.toISOString(),
            });
          }
        }
      return found;
    },

    async removeDesktopDiskFile(file) {
      await locate(file.datastoreId);
      if (!diskFilePattern.test(file.name)) throw new Error(`not a desktop disk file: ${file.name}`);
      await rm(pathUnder(paths.poolFolder(file), file.name), { force: true });
    },

    async replicaBytes(version, datastoreId) {
      await locate(datastoreId);
      return usedBytes(paths.replica(version, datastoreId));
    },
  };
}

/** Where a replicated image version is downloaded: beside its place in the image store. */
export const incomingImagePath = (target: string) => `${target}.${randomBytes(6).toString("hex")}.incoming`;

/**
 * Puts a replicated image version's file in place, refusing one whose sha256 is not the source's.
 * A file downloaded beside its place (incomingImagePath) is renamed into it; one elsewhere is copied.
 */
export async function installImageFile(target: string, file: string, sha256: string): Promise<void> {
  const actual = await sha256File(file);
  if (actual !== sha256) throw new Error(`replicated image ${target}: sha256 ${actual} != source ${sha256}`);
  await mkdir(dirname(target), { recursive: true });
  const tmp = tmpName(target);
  try {
    if (dirname(file) === dirname(target)) await rename(file, tmp);
    else await copyFile(file, tmp);
    await chmod(tmp, 0o444);
    await rename(tmp, target);
  } finally {
    await rm(tmp, { force: true });
  }
}
