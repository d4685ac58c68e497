import type { Ports, UserDataRef } from "../ports.ts";
import type { Session } from "./model.ts";
import { getSession } from "./sessions.ts";

/**
 * A user's data disk: the only per-user state that survives a refresh and the only thing shipped
 * to the DR region. Versions count committed sessions (0 is the blank disk); `sha256` is the
 * content checksum of the current version, the same in every region that holds it.
 */
export interface UserData {
  tenantId: string;
  userId: string;
  version: number;
  sha256: string;
  sizeBytes: number;
  /** The one session that may write the disk (its overlay is committed at logoff). */
  attachedSessionId?: string;
  attachedVersion?: number;
  lastCommittedSessionId?: string;
  lastChangeAt: string;
  createdAt: string;
  /** Highest version the peer region has applied and verified (versions applied here from the peer count too). */
  replicatedVersion: number;
  replicatedAt?: string;
}

/** One version's change: the delta of the session that made it. */
export interface UserDataChange {
  tenantId: string;
  userId: string;
  version: number;
  sha256: string;
  deltaBytes: number;
  sessionId?: string;
  /** The region whose session made the change. */
  origin: string;
  committedAt: string;
  shippedAt?: string;
  shippedBytes?: number;
  /** When the peer region applied and verified it. */
  replicatedAt?: string;
}

export type UserDataState = "ATTACHING" | "ATTACHED" | "READ_ONLY" | "COMMITTING" | "COMMITTED";

type UserDataPorts = Pick<
  Ports,
  "userData" | "userDataStore" | "sessions" | "replication" | "peer" | "clock"
> & {
  region: Pick<Ports["region"], "name" | "userDataSizeBytes">;
};

const refOf = (job: UserDataRef): UserDataRef => ({ tenantId: job.tenantId, userId: job.userId });

async function ensureRecord(ports: UserDataPorts, ref: UserDataRef): Promise<UserData> {
  const existing = await ports.userData.get(ref);
  if (existing) return existing;
  const sizeBytes = ports.region.userDataSizeBytes;
  const sha256 = await ports.userDataStore.ensureBlank(ref, sizeBytes);
  const now = ports.clock.now().toISOString();
  return ports.userData.createIfAbsent({
    ...ref,
    version: 0,
    sha256,
    sizeBytes,
    lastChangeAt: now,
    createdAt: now,
    replicatedVersion: 0,
  });
}

/**
 * Logon's job: the session's overlay on the user's disk. A user with another active session (in
 * another pool) gets a read-only overlay whose changes are discarded at logoff, as roaming
 * profiles do; a writer whose logoff never sent its commit is committed first.
 */
export async function attachUserData(
  ports: UserDataPorts,
  job: UserDataRef & { sessionId: string },
): Promise<string> {
  const ref = refOf(job);
  let record = await ensureRecord(ports, ref);
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
    await commitUserData(ports, { ...ref, sessionId: record.attachedSessionId });
    record = await ensureRecord(ports, ref);
  }
  // The overlay first: a session reported ATTACHED always has its disk.
  await ports.userDataStore.ensureOverlay(ref, job.sessionId, record.version);
  if (!(await ports.userData.attach(ref, job.sessionId, record.version))) {
    throw new Error(`user data of ${job.userId} moved while attaching; retry`);
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
  const ref = refOf(job);
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
  if (!(await ports.userDataStore.hasOverlay(ref, job.sessionId))) {
    await ports.userData.detach(ref, job.sessionId);
    return "skipped: the session has no overlay";
  }
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
  };
  if (!(await ports.userData.recordChange(change, job.sessionId))) {
    const now = await ports.userData.get(ref);
    if (now?.lastCommittedSessionId !== job.sessionId)
      throw new Error(`user data of ${job.userId} moved while committing; retry`);
  }
  await ports.userDataStore.removeOverlay(ref, job.sessionId);
  // The previous version stays for read-only overlays opened on it; older ones go.
  if (from > 0) await ports.userDataStore.removeVersion(ref, from - 1);
  await shipLater(ports, ref, from + 1);
  return `committed v${from + 1} (${deltaBytes} B delta)`;
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
  await ports.userData.detach(refOf(job), job.sessionId);
  await ports.userDataStore.removeOverlay(refOf(job), job.sessionId);
  return "discarded";
}

/** A session with its user data's state (never read on the logon path). */
export async function describeSession(
  ports: Pick<Ports, "sessions" | "userData" | "userDataStore">,
  tenantId: string,
  sessionId: string,
) {
  const session = await getSession(ports, tenantId, sessionId);
  return { ...session, userData: await sessionUserData(ports, session) };
}

/** What a session shows of its user data. */
export async function sessionUserData(
  ports: Pick<Ports, "userData" | "userDataStore">,
  session: Pick<Session, "tenantId" | "userId" | "sessionId" | "state">,
): Promise<{ state: UserDataState; version?: number }> {
  const ref = refOf(session);
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
