import { checkpoint } from "../faults.ts";
import type { Ports } from "../ports/index.ts";
import { desktopRef, userRef } from "./common.ts";
import { connectionOf } from "./connection.ts";
import type { UserData, UserDataChange, UserDataRef, UserDataState } from "./dr-model.ts";
import { RetryLater } from "./errors.ts";
import { parseSessionId } from "./ids.ts";
import type { Session } from "./model.ts";
import { getSession } from "./sessions.ts";
import { commitAsFork, drEpoch, pruneVersions } from "./user-data-forks.ts";

type UserDataPorts = Pick<
  Ports,
  | "userData"
  | "forks"
  | "userDataStore"
  | "sessions"
  | "desktops"
  | "jobs"
  | "replication"
  | "peer"
  | "clock"
  | "dr"
> & {
  region: Pick<Ports["region"], "name" | "userDataSizeBytes">;
};

async function ensureRecord(ports: UserDataPorts, ref: UserDataRef): Promise<UserData> {
  return (await ports.userData.get(ref)) ?? createRecord(ports, ref);
}

/**
 * A new user's record at version 0, its blank disk made first. With `attachTo`, the session's
 * overlay on that disk is made next and the record is created already attached to it (one write;
 * a session reported ATTACHED always has its disk). Answers the record as it is: the caller's, or
 * one that was there first.
 */
async function createRecord(ports: UserDataPorts, ref: UserDataRef, attachTo?: string): Promise<UserData> {
  const sizeBytes = ports.region.userDataSizeBytes;
  const sha256 = await ports.userDataStore.ensureBlank(ref, sizeBytes);
  if (attachTo) await ports.userDataStore.ensureOverlay(ref, attachTo, 0);
  const now = ports.clock.now().toISOString();
  return ports.userData.createIfAbsent({
    ...ref,
    version: 0,
    sha256,
    sizeBytes,
    lastChangeAt: now,
    createdAt: now,
    replicatedVersion: 0,
    ...(attachTo ? { attachedSessionId: attachTo, attachedVersion: 0, attachedAt: now } : {}),
  });
}

/**
 * A user with no record yet (their first logon): the record is created attached to the session.
 * When a record was there first (made meanwhile, e.g. from the peer region), the overlay made here
 * on version 0 goes (no VM has had it: plugging follows the attach) and the caller attaches to
 * that record as to any other.
 */
async function attachFirst(ports: UserDataPorts, ref: UserDataRef, sessionId: string) {
  const record = await createRecord(ports, ref, sessionId);
  // Not ours (ours: written now, or by an earlier run of this job whose answer was lost).
  if (record.attachedSessionId !== sessionId) await ports.userDataStore.removeOverlay(ref, sessionId);
  return record;
}

/**
 * Logon's job: the session's overlay on the user's disk. A user with another active session (in
 * another pool) gets a read-only overlay whose changes are discarded at logoff, as roaming
 * profiles do; a writer whose logoff never sent its commit is committed first.
 */
export async function attachUserData(
  ports: UserDataPorts,
  job: UserDataRef & { sessionId: string; vm?: boolean },
): Promise<string> {
  const outcome = await attachOverlay(ports, job);
  await plugIntoVm(ports, job);
  return outcome;
}

/**
 * A VM desktop gets the disk hot-plugged by its host (a job on the host's queue), once the
 * overlay exists; a desktop whose VM runs elsewhere mounts it its own way.
 */
async function plugIntoVm(ports: UserDataPorts, job: UserDataRef & { sessionId: string; vm?: boolean }) {
  const at = parseSessionId(job.sessionId);
  // The logon's claim saw no VM on the desktop: none comes while it holds the session.
  if (!at || job.vm === false) return;
  const desktop = await ports.desktops.get(job.tenantId, at.poolId, at.desktopId);
  if (!desktop?.console || desktop.sessionId !== job.sessionId) return;
  await ports.jobs.send([
    { kind: "plug-user-data", ...desktopRef(desktop), sessionId: job.sessionId, userId: job.userId },
  ]);
}

async function attachOverlay(
  ports: UserDataPorts,
  job: UserDataRef & { sessionId: string },
): Promise<string> {
  const ref = userRef(job);
  let record = (await ports.userData.get(ref)) ?? (await attachFirst(ports, ref, job.sessionId));
  if (record.attachedSessionId === job.sessionId) {
    await ports.userDataStore.ensureOverlay(ref, job.sessionId, record.attachedVersion ?? record.version);
    return `attached v${record.attachedVersion ?? record.version}`;
  }
  if (record.attachedSessionId) {
    const other = await ports.sessions.get(job.tenantId, record.attachedSessionId);
    if (other?.state === "ACTIVE") {
      await ports.userDataStore.ensureOverlay(ref, job.sessionId, record.version);
      return `attached read-only: ${record.attachedSessionId} is the writer`;
    }
    const earlier = await commitUserData(ports, { ...ref, sessionId: record.attachedSessionId });
    if (earlier.startsWith("waiting"))
      throw new RetryLater(`the previous session's disk is not committed yet (${earlier})`);
    record = await ensureRecord(ports, ref);
  }
  // The overlay first: a session reported ATTACHED always has its disk.
  await ports.userDataStore.ensureOverlay(ref, job.sessionId, record.version);
  if (!(await ports.userData.attach(ref, job.sessionId, record.version, ports.clock.now().toISOString()))) {
    throw new RetryLater(`user data of ${job.userId} moved while attaching`);
  }
  return `attached v${record.version}`;
}

/**
 * Logoff's job: the session's overlay becomes the next version of the user's disk, its delta is
 * kept for shipping, and the change is recorded before the overlay is deleted, so a re-run after
 * a crash at any line finishes the same commit instead of applying it twice.
 */
export async function commitUserData(
  ports: UserDataPorts,
  job: UserDataRef & { sessionId: string },
): Promise<string> {
  const ref = userRef(job);
  const record = await ports.userData.get(ref);
  if (!record) return "skipped: no user data";
  if (record.lastCommittedSessionId === job.sessionId) {
    await ports.userDataStore.removeOverlay(ref, job.sessionId);
    await shipLater(ports, ref, record.version);
    return `already committed as v${record.version}`;
  }
  if (record.attachedSessionId !== job.sessionId) {
    await ports.userDataStore.removeOverlay(ref, job.sessionId);
    return "discarded: the session was not the user's writer";
  }
  if (record.pluggedInto)
    return `waiting: desktop ${record.pluggedInto} still holds the disk; its host sends the commit again`;
  if (!(await ports.userDataStore.hasOverlay(ref, job.sessionId))) {
    await ports.userData.detach(ref, job.sessionId);
    return "skipped: the session has no overlay";
  }
  const { epoch, fenced } = await drEpoch(ports, job.tenantId);
  if (fenced) return commitAsFork(ports, record, job.sessionId, epoch, "committed-while-fenced");
  // The peer's later history replaced the version this session was opened on.
  if ((record.attachedVersion ?? record.version) !== record.version)
    return commitAsFork(ports, record, job.sessionId, epoch, "committed-on-replaced-version");
  const from = record.version;
  const { sha256, deltaBytes } = await ports.userDataStore.commitOverlay(ref, job.sessionId, from);
  const change: UserDataChange = {
    ...ref,
    version: from + 1,
    sha256,
    deltaBytes,
    sessionId: job.sessionId,
    origin: ports.region.name,
    committedAt: ports.clock.now().toISOString(),
    epoch,
    baseSha256: record.sha256,
  };
  await checkpoint("commit:before-record", { ...ref, sessionId: job.sessionId });
  const recorded = await ports.userData.recordChange(change, job.sessionId);
  if (!recorded) {
    const now = await ports.userData.get(ref);
    if (now?.lastCommittedSessionId !== job.sessionId)
      throw new RetryLater(`user data of ${job.userId} moved while committing`);
  }
  await checkpoint("commit:before-cleanup", { ...ref, sessionId: job.sessionId });
  await ports.userDataStore.removeOverlay(ref, job.sessionId);
  await tidyHistory(ports, ref, recorded ? afterRecord(record, change) : undefined);
  await shipLater(ports, ref, from + 1);
  // Last, off the way of the change to the peer: a deep chain of versions becomes one file.
  await ports.userDataStore.flattenIfDeep(ref, from + 1);
  return `committed v${from + 1} (${deltaBytes} B delta)`;
}

/**
 * How long a change's record stays once both regions have it and a later version exists: the
 * replication status computes its RPO percentiles over the changes still there (recent ones).
 */
export const changeRetentionMs = 7 * 24 * 3_600_000;

/**
 * The user's record as `recordChange` of `change` left it, from the read before the write: what
 * tidying needs without reading it again. A field another write moved since (the peer's
 * acknowledgement of an older version) is older here, which only tidies less this time.
 */
export function afterRecord(before: UserData, change: UserDataChange): UserData {
  const { attachedSessionId: _s, attachedVersion: _v, attachedAt: _a, ...detached } = before;
  const common = { version: change.version, sha256: change.sha256, epoch: change.epoch ?? 0 };
  return change.sessionId
    ? { ...detached, ...common, lastChangeAt: change.committedAt, lastCommittedSessionId: change.sessionId }
    : {
        ...before,
        ...common,
        lastChangeAt: change.committedAt,
        replicatedVersion: change.version,
        replicatedAt: change.committedAt,
      };
}

/**
 * After a new version, or the peer's verification of one: removes the disks no one needs and lets
 * replicated history expire, both from one read of the user's record (or from the record the
 * caller just wrote and got back).
 */
export async function tidyHistory(
  ports: Pick<Ports, "userData" | "userDataStore" | "clock">,
  ref: UserDataRef,
  written?: UserData,
): Promise<void> {
  const record = written ?? (await ports.userData.get(ref));
  if (!record) return;
  await pruneVersions(ports, record);
  await expireReplicatedHistory(ports, record);
}

/**
 * Lets the user's change records expire once they are replicated and superseded: every version
 * the peer has verified (`replicatedVersion`; versions applied here from the peer count too) that
 * a later version follows. The latest version, and any the peer does not have, never expire.
 */
async function expireReplicatedHistory(
  ports: Pick<Ports, "userData" | "clock">,
  record: UserData,
): Promise<number> {
  const ref = userRef(record);
  const through = Math.min(record.version - 1, record.replicatedVersion);
  if (through < 1) return 0;
  const expiresAt = Math.floor((ports.clock.now().getTime() + changeRetentionMs) / 1000);
  return ports.userData.expireChanges(ref, through, expiresAt);
}

async function shipLater(ports: Pick<Ports, "replication" | "peer">, ref: UserDataRef, version: number) {
  if (!ports.peer || version === 0) return;
  await ports.replication.send([{ kind: "ship-user-data", ...ref, version }]);
}

/** A drill's session: its overlay goes, the disk stays as replicated. */
export async function discardUserData(
  ports: Pick<Ports, "userData" | "userDataStore">,
  job: UserDataRef & { sessionId: string },
): Promise<string> {
  await ports.userData.detach(userRef(job), job.sessionId);
  await ports.userDataStore.removeOverlay(userRef(job), job.sessionId);
  return "discarded";
}

/** A session with its user data's state (never read on the logon path). */
export async function describeSession(
  ports: Pick<Ports, "sessions" | "desktops" | "userData" | "userDataStore">,
  tenantId: string,
  sessionId: string,
) {
  const session = await getSession(ports, tenantId, sessionId);
  const desktop =
    session.state === "ACTIVE"
      ? await ports.desktops.get(tenantId, session.poolId, session.desktopId)
      : undefined;
  const connection = connectionOf(desktop, session);
  return {
    ...session,
    userData: await sessionUserData(ports, session),
    ...(connection ? { connection } : {}),
  };
}

/** What a session shows of its user data. */
export async function sessionUserData(
  ports: Pick<Ports, "userData" | "userDataStore">,
  session: Pick<Session, "tenantId" | "userId" | "sessionId" | "state">,
): Promise<{ state: UserDataState; version?: number }> {
  const ref = userRef(session);
  const record = await ports.userData.get(ref);
  if (record?.attachedSessionId === session.sessionId) {
    return session.state === "ACTIVE"
      ? { state: "ATTACHED", version: record.attachedVersion ?? record.version }
      : { state: "COMMITTING" };
  }
  if (session.state !== "ACTIVE") {
    return record?.lastCommittedSessionId === session.sessionId
      ? { state: "COMMITTED", version: record.version }
      : { state: "COMMITTED" };
  }
  if (record && (await ports.userDataStore.hasOverlay(ref, session.sessionId)))
    return { state: "READ_ONLY", version: record.version };
  return { state: "ATTACHING" };
}
