import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { copyFile, link, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { UserDataRef } from "../../domain/dr-model.ts";
import type { UserDataStore } from "../../ports/index.ts";
import {
  allRegionDigests,
  contentChecksum,
  contentSha256,
  type RegionDigests,
  readRegionDigests,
  withChanges,
  writeRegionDigests,
} from "./content-checksum.ts";
import { pathUnder } from "./paths.ts";
import { setQcow2Backing } from "./qcow2-backing.ts";
import { backingPathOf, chainFiles, qcow2Header } from "./qcow2-chain.ts";
import { createQcow2Overlay } from "./qcow2-overlay.ts";
import { qemuImg } from "./qemu-img.ts";

const tmpName = (path: string) => `${path}.${randomBytes(6).toString("hex")}.tmp`;
const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

/** `qemu-img rebase -u -F qcow2 -b backing file`, done in the header here where it can be. */
async function rebaseUnsafe(file: string, backing: string) {
  if (await setQcow2Backing(file, backing)) return;
  await qemuImg(["rebase", "-q", "-u", "-F", "qcow2", "-b", backing, file]);
}

/** A second name for a file; a copy where the filesystem has no hard links. */
async function linkOrCopy(from: string, to: string) {
  try {
    await link(from, to);
  } catch (err) {
    if (
      !["EPERM", "ENOTSUP", "EOPNOTSUPP", "EXDEV", "EMLINK"].includes(
        (err as NodeJS.ErrnoException).code ?? "",
      )
    )
      throw err;
    await copyFile(from, to);
  }
}

/** Copies with a reflink where the filesystem can (XFS, btrfs): a disk copy then costs nothing. */
const cloneFile = (from: string, to: string) => copyFile(from, to, constants.COPYFILE_FICLONE);

/** `path` (with its chain) as one new file, renamed to `target` (which it may replace). */
async function flattenTo(path: string, target: string) {
  await mkdir(dirname(target), { recursive: true });
  const tmp = tmpName(target);
  try {
    await qemuImg(["convert", "-q", "-f", "qcow2", path, "-O", "qcow2", tmp]);
    await rename(tmp, target);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** A version's file name. */
const diskName = (version: number) => `disk-v${version}.qcow2`;
const versionOfName = (name: string | undefined) => {
  const n = name === undefined ? undefined : /^disk-v(\d+)\.qcow2$/.exec(name)?.[1];
  return n === undefined ? undefined : Number(n);
};

/**
 * Versions deeper than this many files are flattened (after they are recorded and acknowledged,
 * off the replication path): each read of the guest walks the chain, and a flat version lets the
 * older ones go.
 */
export const flattenDepth = 8;

export function userDataPaths(root: string) {
  const user = (r: UserDataRef) => pathUnder(root, r.tenantId, r.userId);
  return {
    user,
    disk: (r: UserDataRef, version: number) => join(user(r), diskName(version)),
    /** The version's region digests (content-checksum.ts), kept so a change costs its regions. */
    digests: (r: UserDataRef, version: number) => join(user(r), `disk-v${version}.digests`),
    overlay: (r: UserDataRef, sessionId: string) => pathUnder(user(r), "sessions", `${sessionId}.qcow2`),
    delta: (r: UserDataRef, version: number) => join(user(r), "deltas", `v${version}.qcow2`),
    fork: (r: UserDataRef, forkId: string) => pathUnder(user(r), "forks", `${forkId}.qcow2`),
    /** A delta shipped by the peer, downloaded beside the disks it applies to (same filesystem). */
    incoming: (r: UserDataRef, version: number) =>
      join(user(r), "incoming", `v${version}.${randomBytes(6).toString("hex")}.qcow2`),
  };
}

/**
 * Users' data disks as qcow2 under `<root>/<tenant>/<user>/`. Version files are immutable: version
 * n+1 is the delta that made it (the session's overlay, or the delta shipped from the peer region)
 * on version n, which it names as its backing file. A version so costs its change, not the disk:
 * no copy of version n, and its content checksum rehashes only the regions the delta touches
 * (from version n's region digests, kept beside it). Chains deeper than `flattenDepth` are
 * flattened later. A crash or a second run at any point builds the same version again.
 */
export function qcow2UserDataStore(root: string): UserDataStore {
  const paths = userDataPaths(root);
  // Version 0 of every user of one size is the same blank disk: its checksum is computed once,
  // and qemu-img makes it once (a template under the root, which no tenant id can name, as they
  // never start with a dot); each user's is a copy.
  const blankSha256 = new Map<number, Promise<string>>();
  const blankTemplates = new Map<number, Promise<string>>();

  function blankTemplate(sizeBytes: number): Promise<string> {
    let made = blankTemplates.get(sizeBytes);
    if (!made) {
      made = (async () => {
        const template = join(root, ".blank-disks", `${sizeBytes}.qcow2`);
        if (await exists(template)) return template;
        await mkdir(dirname(template), { recursive: true });
        const tmp = tmpName(template);
        try {
          await qemuImg(["create", "-q", "-f", "qcow2", tmp, String(sizeBytes)]);
          await rename(tmp, template);
        } finally {
          await rm(tmp, { force: true });
        }
        return template;
      })();
      blankTemplates.set(sizeBytes, made);
      made.catch(() => blankTemplates.delete(sizeBytes));
    }
    return made;
  }

  /** A version's region digests: kept beside it, or computed from the whole disk (and kept). */
  async function digestsOf(ref: UserDataRef, version: number): Promise<RegionDigests> {
    const kept = await readRegionDigests(paths.digests(ref, version));
    if (kept) return kept;
    const computed = await allRegionDigests(paths.disk(ref, version));
    await writeRegionDigests(paths.digests(ref, version), computed);
    return computed;
  }

  /**
   * Version `version` from `delta` (a file under a temporary name in the user's folder or below
   * it), which reads version version-1 as its backing file: its digests are computed from the
   * predecessor's, then kept, then the file is renamed into place. A version already there with
   * the same content (built by an earlier run, perhaps flattened since) stays.
   */
  async function buildVersion(ref: UserDataRef, version: number, delta: string) {
    const from = version - 1;
    const base = await digestsOf(ref, from);
    // A session's overlay already names it (and is left as it is: a retry may still read it by
    // its own name); a delta from the peer names the peer's file, and is pointed here.
    if ((await qcow2Header(delta)).backingName !== paths.disk(ref, from))
      await rebaseUnsafe(delta, paths.disk(ref, from));
    const digests = await withChanges(delta, base, paths.disk(ref, from));
    const sha256 = contentChecksum(digests);
    return {
      sha256,
      async install() {
        const target = paths.disk(ref, version);
        const there = await readRegionDigests(paths.digests(ref, version));
        if (there && contentChecksum(there) === sha256 && (await exists(target))) return;
        await writeRegionDigests(paths.digests(ref, version), digests);
        await rename(delta, target);
      },
    };
  }

  return {
    async ensureBlank(ref, sizeBytes) {
      const target = paths.disk(ref, 0);
      if (!(await exists(target))) {
        await mkdir(dirname(target), { recursive: true });
        const tmp = tmpName(target);
        try {
          await cloneFile(await blankTemplate(sizeBytes), tmp);
          // Blank: no region holds data (digests beside it, so its first change reads nothing more).
          const { virtualSize } = await qcow2Header(tmp);
          await writeRegionDigests(paths.digests(ref, 0), { virtualSize, regions: new Map() });
          await rename(tmp, target);
        } finally {
          await rm(tmp, { force: true });
        }
      }
      // Keyed by the file's own virtual size (a disk made under another configured size differs).
      const size = (await qcow2Header(target)).virtualSize;
      let sha256 = blankSha256.get(size);
      if (!sha256) {
        sha256 = contentSha256(target);
        blankSha256.set(size, sha256);
        sha256.catch(() => blankSha256.delete(size));
      }
      return sha256;
    },

    async ensureOverlay(ref, sessionId, version) {
      const target = paths.overlay(ref, sessionId);
      // An existing overlay may already hold the session's writes: never recreate it.
      if (await exists(target)) return target;
      await mkdir(dirname(target), { recursive: true });
      const tmp = tmpName(target);
      try {
        await createQcow2Overlay(paths.disk(ref, version), tmp);
        await rename(tmp, target);
      } finally {
        await rm(tmp, { force: true });
      }
      return target;
    },

    hasOverlay: (ref, sessionId) => exists(paths.overlay(ref, sessionId)),
    overlayPath: (ref, sessionId) => paths.overlay(ref, sessionId),

    async commitOverlay(ref, sessionId, fromVersion) {
      const to = fromVersion + 1;
      const delta = paths.delta(ref, to);
      await mkdir(dirname(delta), { recursive: true });
      // The session's overlay, which nothing writes any more, is the new version and the shipped
      // delta: second names for the same file rather than copies.
      const tmp = tmpName(paths.disk(ref, to));
      const deltaTmp = tmpName(delta);
      try {
        await linkOrCopy(paths.overlay(ref, sessionId), tmp);
        const built = await buildVersion(ref, to, tmp);
        await linkOrCopy(tmp, deltaTmp);
        await rename(deltaTmp, delta);
        await built.install();
        return { sha256: built.sha256, deltaBytes: (await stat(delta)).size };
      } finally {
        await Promise.all([rm(tmp, { force: true }), rm(deltaTmp, { force: true })]);
      }
    },

    async applyDelta(ref, fromVersion, deltaFile, sizeBytes) {
      // Version 0 is a blank disk: qemu-img makes it byte-identical here, so it is never shipped.
      if (fromVersion === 0) await this.ensureBlank(ref, sizeBytes);
      const built = await buildVersion(ref, fromVersion + 1, deltaFile);
      return built;
    },

    async flattenIfDeep(ref, version) {
      const disk = paths.disk(ref, version);
      if ((await chainFiles(disk)).length <= flattenDepth) return false;
      // The same content in one file: versions above keep reading it by its name.
      await flattenTo(disk, disk);
      return true;
    },

    async hasVersion(ref, version) {
      return exists(paths.disk(ref, version));
    },
    contentSha256: (ref, version) => contentSha256(paths.disk(ref, version)),
    deltaPath: (ref, version) => paths.delta(ref, version),
    incomingDeltaPath: (ref, version) => paths.incoming(ref, version),
    async removeOverlay(ref, sessionId) {
      await rm(paths.overlay(ref, sessionId), { force: true });
    },
    async removeDelta(ref, version) {
      await rm(paths.delta(ref, version), { force: true });
    },
    async removeVersion(ref, version) {
      await rm(paths.disk(ref, version), { force: true });
      await rm(paths.digests(ref, version), { force: true });
    },
    async listVersions(ref) {
      const names = await readdir(paths.user(ref)).catch(() => [] as string[]);
      const versions = names.flatMap((n) => versionOfName(n) ?? []);
      return Promise.all(
        versions.map(async (version) => {
          const disk = paths.disk(ref, version);
          const header = await qcow2Header(disk).catch(() => undefined);
          const backing = backingPathOf({ path: disk, ...header });
          // Only the user's own versions count (anything else is not this store's to prune).
          const backingVersion =
            backing && resolve(dirname(backing)) === resolve(paths.user(ref))
              ? versionOfName(basename(backing))
              : undefined;
          return backingVersion === undefined ? { version } : { version, backingVersion };
        }),
      );
    },

    async keepVersionAsFork(ref, version, forkId) {
      const target = paths.fork(ref, forkId);
      if (!(await exists(target))) await flattenTo(paths.disk(ref, version), target);
    },

    async keepOverlayAsFork(ref, sessionId, fromVersion, forkId) {
      const target = paths.fork(ref, forkId);
      if (await exists(target)) return contentSha256(target);
      const overlay = paths.overlay(ref, sessionId);
      await flattenTo(overlay, target);
      return contentChecksum(await withChanges(overlay, await digestsOf(ref, fromVersion)));
    },

    async overlayFromFork(ref, forkId, sessionId, version) {
      const target = paths.overlay(ref, sessionId);
      if (await exists(target)) return;
      await mkdir(dirname(target), { recursive: true });
      const tmp = tmpName(target);
      try {
        await copyFile(paths.fork(ref, forkId), tmp);
        // Safe mode: wherever the fork and the version differ the overlay gets the fork's data
        // (zeros too), so the version with this overlay reads exactly as the fork.
        await qemuImg(["rebase", "-q", "-F", "qcow2", "-b", paths.disk(ref, version), tmp]);
        await rename(tmp, target);
      } finally {
        await rm(tmp, { force: true });
      }
    },

    async removeFork(ref, forkId) {
      await rm(paths.fork(ref, forkId), { force: true });
    },
  };
}
