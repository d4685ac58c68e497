/**
 * Forks of users' data at failover. The tenant's DR epoch (DrState.epoch) rises with each failover
 * and each completed failback, and every version of a user's data records the epoch it was made
 * in. The rule: the history of the later epoch is the user's history; what a region made in an
 * earlier epoch that this history does not contain is kept whole as a fork (never lost) until the
 * tenant resolves it (fork-resolution.ts): drop it, or make its content the user's next version.
 */
import { createHash } from "node:crypto";
import type { Ports } from "../ports/index.ts";
import type { UserData, UserDataFork, UserDataRef } from "./dr-model.ts";
import { RetryLater } from "./errors.ts";

type ForkPorts = Pick<Ports, "userData" | "forks" | "userDataStore" | "clock"> & {
  region: Pick<Ports["region"], "name">;
};

/** Deterministic, so a job run again makes the same fork, not a second one. */
const forkIdOf = (...parts: (string | number)[]) =>
  `fork-${createHash("sha256").update(parts.join("\n")).digest("hex").slice(0, 16)}`;

/** The tenant's epoch here, and whether this region is fenced (the peer serves the tenant). */
export async function drEpoch(ports: Pick<Ports, "dr">, tenantId: string) {
  const state = await ports.dr.getState(tenantId);
  return { epoch: state?.epoch ?? 0, fenced: state?.fenced === true };
}

/**
 * A session that ends in a fenced region (it was open at failover, or began before the fence was
 * heard) is not committed as the next version, which the serving region owns now; nor is one whose
 * version the peer's later history replaced meanwhile. Its disk is kept as a fork.
 */
export async function commitAsFork(
  ports: ForkPorts,
  record: UserData,
  sessionId: string,
  epoch: number,
  cause: UserDataFork["cause"],
): Promise<string> {
  const ref = { tenantId: record.tenantId, userId: record.userId };
  const baseVersion = record.attachedVersion ?? record.version;
  const forkId = forkIdOf(ref.tenantId, ref.userId, sessionId);
  const sha256 = await ports.userDataStore.keepOverlayAsFork(ref, sessionId, baseVersion, forkId);
  const fork: UserDataFork = {
    ...ref,
    forkId,
    cause,
    state: "OPEN",
    region: ports.region.name,
    epoch,
    baseVersion,
    sessionId,
    sha256,
    sizeBytes: record.sizeBytes,
    createdAt: ports.clock.now().toISOString(),
  };
  if (!(await ports.forks.forkCommit(ref, fork))) {
    const now = await ports.userData.get(ref);
    if (now?.attachedSessionId === sessionId) throw new RetryLater(`fork ${forkId} not recorded yet`);
  }
  await ports.userDataStore.removeOverlay(ref, sessionId);
  return `kept as fork ${forkId} (${cause})`;
}

/**
 * The peer's change `version` of a later epoch replaces this region's versions from `version` on,
 * which the peer never had: they become a fork (holding the latest one's disk), and the history
 * goes back to the version both share, so that the peer's change applies next.
 */
export async function forkOverriddenHistory(
  ports: ForkPorts,
  record: UserData,
  incoming: { version: number; baseSha256?: string | undefined },
): Promise<string> {
  const ref: UserDataRef = { tenantId: record.tenantId, userId: record.userId };
  const base = incoming.version - 1;
  const [baseChange, baseSha] = await Promise.all([
    base > 0 ? ports.userData.getChange(ref, base) : undefined,
    base === 0
      ? ports.userDataStore.ensureBlank(ref, record.sizeBytes)
      : ports.userDataStore.contentSha256(ref, base),
  ]);
  if (incoming.baseSha256 && incoming.baseSha256 !== baseSha)
    throw new Error(`v${base} of ${ref.userId} differs from the peer's: the histories split earlier`);
  const forkId = forkIdOf(ref.tenantId, ref.userId, "history", base, record.version, record.sha256);
  const versions = Array.from({ length: record.version - base }, (_, i) => base + 1 + i);
  await ports.userDataStore.keepVersionAsFork(ref, record.version, forkId);
  const fork: UserDataFork = {
    ...ref,
    forkId,
    cause: "superseded-by-failover",
    state: "OPEN",
    region: ports.region.name,
    epoch: record.epoch ?? 0,
    baseVersion: base,
    versions,
    sha256: record.sha256,
    sizeBytes: record.sizeBytes,
    createdAt: ports.clock.now().toISOString(),
  };
  const moved = !(await ports.forks.forkHistory(
    ref,
    record.version,
    { version: base, sha256: baseSha, epoch: baseChange?.epoch ?? 0 },
    fork,
  ));
  if (moved) throw new RetryLater(`user data of ${ref.userId} moved (or has a writer) while forking`);
  await Promise.all(versions.map((v) => ports.userDataStore.removeDelta(ref, v)));
  return forkId;
}

/**
 * Removes the user's disks no one needs, by the record as the caller just read or wrote it: kept
 * are the latest version, the one before (read-only overlays may be open on it), the one the peer
 * has verified last (a fork's base, should the peer's history replace the later ones), the
 * writer's, and every version one of those reads through. Versions above the latest are never
 * touched (a commit may be building one).
 */
export async function pruneVersions(ports: Pick<Ports, "userDataStore">, record: UserData) {
  const ref: UserDataRef = { tenantId: record.tenantId, userId: record.userId };
  const present = await ports.userDataStore.listVersions(ref);
  const backingOf = new Map(present.map((p) => [p.version, p.backingVersion]));
  const keep = new Set<number>();
  for (const wanted of [
    record.version,
    record.version - 1,
    record.replicatedVersion,
    record.attachedVersion,
  ]) {
    for (let v = wanted; v !== undefined && !keep.has(v); v = backingOf.get(v)) keep.add(v);
  }
  await Promise.all(
    present
      .filter(({ version }) => version < record.version && !keep.has(version))
      .map(({ version }) => ports.userDataStore.removeVersion(ref, version)),
  );
}
