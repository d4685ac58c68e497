import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { copyFile, link, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { UserDataRef } from "../../domain/dr-model.ts";
import type { UserDataStore } from "../../ports/index.ts";
import { contentSha256, qcow2Header } from "./content-checksum.ts";
import { pathUnder } from "./paths.ts";
import { setQcow2Backing } from "./qcow2-backing.ts";
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

/** qemu-img's `--image-opts` value: commas in a value are doubled. */
const optionValue = (v: string) => v.replaceAll(",", ",,");

/**
 * `delta` with `base` as its backing file, whatever its header names. The delta is opened without
 * a lock: a commit only reads it (-d), and a duplicate run of the same job reads it at once.
 */
const commitOptions = (delta: string, base: string) =>
  [
    "driver=qcow2",
    "file.driver=file",
    "file.locking=off",
    `file.filename=${optionValue(delta)}`,
    "backing.driver=qcow2",
    "backing.file.driver=file",
    `backing.file.filename=${optionValue(base)}`,
  ].join(",");

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

export function userDataPaths(root: string) {
  const user = (r: UserDataRef) => pathUnder(root, r.tenantId, r.userId);
  return {
    user,
    disk: (r: UserDataRef, version: number) => join(user(r), `disk-v${version}.qcow2`),
    overlay: (r: UserDataRef, sessionId: string) => pathUnder(user(r), "sessions", `${sessionId}.qcow2`),
    delta: (r: UserDataRef, version: number) => join(user(r), "deltas", `v${version}.qcow2`),
    fork: (r: UserDataRef, forkId: string) => pathUnder(user(r), "forks", `${forkId}.qcow2`),
    /** A delta shipped by the peer, downloaded beside the disks it applies to (same filesystem). */
    incoming: (r: UserDataRef, version: number) =>
      join(user(r), "incoming", `v${version}.${randomBytes(6).toString("hex")}.qcow2`),
  };
}

/**
 * Users' data disks as qcow2 under `<root>/<tenant>/<user>/`. Disk versions are immutable files
 * (`disk-v<n>.qcow2`): a commit or an apply builds version n+1 in a temporary copy of version n
 * and renames it into place, so a crash or a second run can never apply a delta twice to one file.
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

  /**
   * Builds `target` = the disk `from` + `delta` in a temporary file, verifies nothing, returns its
   * content checksum. The delta is only read: qemu-img is told the copy is its backing file
   * (instead of that being written into the delta's header), so the delta stays as it was, and
   * runs of the same build at once each write their own copy.
   */
  async function buildDisk(from: string, delta: string, target: string) {
    const tmp = tmpName(target);
    try {
      await cloneFile(from, tmp);
      // -d keeps the delta intact: it is the artifact that is shipped to the peer region.
      await qemuImg(["commit", "-q", "-d", "--image-opts", commitOptions(delta, tmp)]);
      const sha256 = await contentSha256(tmp);
      return { tmp, target, sha256 };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  return {
    async ensureBlank(ref, sizeBytes) {
      const target = paths.disk(ref, 0);
      if (!(await exists(target))) {
        await mkdir(dirname(target), { recursive: true });
        const tmp = tmpName(target);
        try {
          await cloneFile(await blankTemplate(sizeBytes), tmp);
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
      const base = paths.disk(ref, fromVersion);
      const overlay = paths.overlay(ref, sessionId);
      const delta = paths.delta(ref, to);
      await mkdir(dirname(delta), { recursive: true });
      const built = await buildDisk(base, overlay, paths.disk(ref, to));
      // The session's overlay, which nothing writes any more, is the delta: a second name for the
      // same file rather than a copy. It points at the version it applies to, a valid chain here.
      const deltaTmp = tmpName(delta);
      try {
        await linkOrCopy(overlay, deltaTmp);
        await rebaseUnsafe(deltaTmp, base);
        await rename(deltaTmp, delta);
        await rename(built.tmp, built.target);
        return { sha256: built.sha256, deltaBytes: (await stat(delta)).size };
      } catch (err) {
        await rm(built.tmp, { force: true });
        throw err;
      } finally {
        await rm(deltaTmp, { force: true });
      }
    },

    async applyDelta(ref, fromVersion, deltaFile, sizeBytes) {
      const base = paths.disk(ref, fromVersion);
      // Version 0 is a blank disk: qemu-img makes it byte-identical here, so it is never shipped.
      if (fromVersion === 0) await this.ensureBlank(ref, sizeBytes);
      const built = await buildDisk(base, deltaFile, paths.disk(ref, fromVersion + 1));
      return {
        sha256: built.sha256,
        install: () => rename(built.tmp, built.target),
        discard: () => rm(built.tmp, { force: true }),
      };
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
    },
    async listVersions(ref) {
      const names = await readdir(paths.user(ref)).catch(() => [] as string[]);
      return names.flatMap((n) => /^disk-v(\d+)\.qcow2$/.exec(n)?.[1] ?? []).map(Number);
    },

    async keepVersionAsFork(ref, version, forkId) {
      const target = paths.fork(ref, forkId);
      if (await exists(target)) return;
      await mkdir(dirname(target), { recursive: true });
      const tmp = tmpName(target);
      try {
        await cloneFile(paths.disk(ref, version), tmp);
        await rename(tmp, target);
      } finally {
        await rm(tmp, { force: true });
      }
    },

    async keepOverlayAsFork(ref, sessionId, fromVersion, forkId) {
      const target = paths.fork(ref, forkId);
      if (await exists(target)) return contentSha256(target);
      await mkdir(dirname(target), { recursive: true });
      const built = await buildDisk(paths.disk(ref, fromVersion), paths.overlay(ref, sessionId), target);
      await rename(built.tmp, target);
      return built.sha256;
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
