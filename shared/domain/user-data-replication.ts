/**
 * User-data replication between regions: the region that owns a change ships its delta, the peer
 * applies it (in version order, verified by content checksum) and acknowledges it.
 */
import { checkpoint } from "../faults.ts";
import type { ReplicationMessage } from "../messages/replication.ts";
import { replicationKeys } from "../messages/replication.ts";
import type { Ports } from "../ports/index.ts";
import { requirePeer, userRef } from "./common.ts";
import { RetryLater } from "./errors.ts";
import type { UserDataChange } from "./model.ts";
import { expireReplicatedHistory } from "./user-data.ts";

type Msg<K extends ReplicationMessage["kind"]> = Extract<ReplicationMessage, { kind: K }>;
type ReplicationPorts = Pick<
  Ports,
  "userData" | "userDataStore" | "peer" | "inbox" | "clock" | "region" | "metrics"
>;

/**
 * Source region: ships one committed change (its delta, not the disk) into the peer's bucket and
 * asks the peer to apply it. The peer being unreachable fails the message, which SQS redelivers:
 * the backlog grows, nothing is lost.
 */
export async function shipUserData(ports: ReplicationPorts, m: Msg<"ship-user-data">): Promise<string> {
  const ref = userRef(m);
  const [record, change] = await Promise.all([
    ports.userData.get(ref),
    ports.userData.getChange(ref, m.version),
  ]);
  if (!record || !change) return "skipped: unknown change";
  if (record.replicatedVersion >= m.version) return `skipped: v${m.version} already replicated`;
  const peer = requirePeer(ports);
  const key = replicationKeys.userDataDelta(m.tenantId, m.userId, m.version);
  const bytes = await peer.putFile(key, ports.userDataStore.deltaPath(ref, m.version));
  await checkpoint("ship:before-send", { ...ref, version: m.version });
  await peer.send([
    {
      kind: "apply-user-data",
      ...ref,
      version: m.version,
      sha256: change.sha256,
      sizeBytes: record.sizeBytes,
      key,
      committedAt: change.committedAt,
      sourceRegion: ports.region.name,
    },
  ]);
  await checkpoint("ship:before-mark", { ...ref, version: m.version });
  await ports.userData.markShipped(ref, m.version, ports.clock.now().toISOString(), bytes);
  return `shipped v${m.version} (${bytes} B)`;
}

/**
 * Target region: applies shipped changes once each, in version order, and verifies the result's
 * content checksum against the source's before it replaces the local copy. Duplicates and older
 * versions are acknowledged again; a version ahead of the next one waits for its turn.
 */
export async function applyUserData(ports: ReplicationPorts, m: Msg<"apply-user-data">): Promise<string> {
  const ref = userRef(m);
  let record = await ports.userData.get(ref);
  const applied = record?.version ?? 0;
  if (m.version <= applied) {
    if (m.version === applied && record?.sha256 !== m.sha256)
      throw new Error(`v${m.version} of ${m.userId} diverges from ${m.sourceRegion}'s (checksum differs)`);
    // A delta shipped again (its acknowledgement was lost) is applied and superseded here: it goes;
    // the latest one's predecessor too (a crash may have come between the apply and its removal).
    if (m.version < applied) await removeAppliedDelta(ports, m, m.version, m.sha256);
    else await removeAppliedDelta(ports, m, m.version - 1);
    await acknowledge(ports, m, record?.replicatedAt ?? ports.clock.now().toISOString());
    return `duplicate: already at v${applied}`;
  }
  if (m.version > applied + 1) throw new RetryLater(`v${m.version} waits for v${applied + 1}`);
  if (!record) {
    const sha256 = await ports.userDataStore.ensureBlank(ref, m.sizeBytes);
    const now = ports.clock.now().toISOString();
    record = await ports.userData.createIfAbsent({
      ...ref,
      version: 0,
      sha256,
      sizeBytes: m.sizeBytes,
      lastChangeAt: now,
      createdAt: now,
      replicatedVersion: 0,
    });
  }
  // Streamed into the user's folder of the user-data store, never staged in temporary storage.
  const fetched = await ports.inbox.fetchFile(m.key, ports.userDataStore.incomingDeltaPath(ref, m.version));
  let deltaBytes: number;
  try {
    const built = await ports.userDataStore.applyDelta(ref, applied, fetched.path, m.sizeBytes);
    if (built.sha256 !== m.sha256) {
      await built.discard();
      throw new Error(`v${m.version} of ${m.userId}: checksum ${built.sha256} != source ${m.sha256}`);
    }
    await built.install();
    deltaBytes = fetched.bytes;
  } finally {
    await fetched.done();
  }
  const appliedAt = ports.clock.now().toISOString();
  const change: UserDataChange = {
    ...ref,
    version: m.version,
    sha256: m.sha256,
    deltaBytes,
    origin: m.sourceRegion,
    committedAt: m.committedAt,
    replicatedAt: appliedAt,
  };
  if (!(await ports.userData.recordChange(change, undefined))) {
    const now = await ports.userData.get(ref);
    if ((now?.version ?? 0) < m.version) throw new Error(`user data of ${m.userId} moved while applying`);
  }
  if (applied > 0) await ports.userDataStore.removeVersion(ref, applied - 1);
  await expireReplicatedHistory(ports, ref);
  // Both regions have the previous version and this one supersedes it: its delta object goes.
  await removeAppliedDelta(ports, m, m.version - 1);
  await acknowledge(ports, m, appliedAt);
  return `applied v${m.version}`;
}

/**
 * Deletes the peer's delta of `version` from this region's bucket, once this region holds that
 * very change (the same checksum, or a change it applied from the peer) and a later version: a
 * change the peer made on a history that diverged from this one's is kept, and so is one whose
 * record here is gone. The versioned bucket keeps a deleted delta for a few days (lifecycle rule).
 */
async function removeAppliedDelta(
  ports: ReplicationPorts,
  m: Msg<"apply-user-data">,
  version: number,
  sha256?: string,
) {
  if (version < 1) return;
  const local = await ports.userData.getChange(userRef(m), version);
  if (!local || (sha256 ? local.sha256 !== sha256 : local.origin !== m.sourceRegion)) return;
  await ports.inbox.remove(replicationKeys.userDataDelta(m.tenantId, m.userId, version));
}

async function acknowledge(ports: ReplicationPorts, m: Msg<"apply-user-data">, appliedAt: string) {
  await requirePeer(ports).send([
    { kind: "user-data-applied", ...userRef(m), version: m.version, sha256: m.sha256, appliedAt },
  ]);
}

/** Source region: the peer verified a version; its delta is no longer needed here. */
export async function userDataApplied(ports: ReplicationPorts, m: Msg<"user-data-applied">): Promise<string> {
  const ref = userRef(m);
  const change = await ports.userData.getChange(ref, m.version);
  if (change && change.sha256 !== m.sha256)
    throw new Error(`peer verified v${m.version} of ${m.userId} with another checksum`);
  await ports.userData.markReplicated(ref, m.version, m.appliedAt);
  await ports.userDataStore.removeDelta(ref, m.version);
  await expireReplicatedHistory(ports, ref);
  if (change && !change.replicatedAt) {
    const lagMs = Date.parse(m.appliedAt) - Date.parse(change.committedAt);
    if (lagMs >= 0) ports.metrics.record(m.tenantId, "replicationLagSeconds", lagMs / 1000);
  }
  return `v${m.version} replicated`;
}
