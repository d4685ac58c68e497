/**
 * User-data replication between regions: the region that owns a change ships its delta, the peer
 * applies it (in version order, verified by content checksum) and acknowledges it.
 */
import { checkpoint } from "../faults.ts";
import type { ReplicationMessage } from "../messages/replication.ts";
import { replicationKeys } from "../messages/replication.ts";
import type { Ports } from "../ports/index.ts";
import { requirePeer, userRef } from "./common.ts";
import type { UserDataChange } from "./dr-model.ts";
import { RetryLater } from "./errors.ts";
import { afterRecord, tidyHistory } from "./user-data.ts";
import { drEpoch, forkOverriddenHistory } from "./user-data-forks.ts";

type Msg<K extends ReplicationMessage["kind"]> = Extract<ReplicationMessage, { kind: K }>;
type ReplicationPorts = Pick<
  Ports,
  "userData" | "forks" | "userDataStore" | "peer" | "inbox" | "clock" | "region" | "metrics" | "dr"
>;

/**
 * Source region: ships one committed change (its delta, not the disk) into the peer's bucket and
 * asks the peer to apply it. The peer being unreachable fails the message, which SQS redelivers:
 * the backlog grows, nothing is lost.
 */
export async function shipUserData(ports: ReplicationPorts, m: Msg<"ship-user-data">): Promise<string> {
  const ref = userRef(m);
  const { record, change } = await ports.userData.getWithChange(ref, m.version);
  if (!record || !change) return "skipped: unknown change";
  if (record.replicatedVersion >= m.version) return `skipped: v${m.version} already replicated`;
  if (change.origin !== ports.region.name) return `skipped: v${m.version} came from the peer`;
  if (change.supersededAt) return `skipped: v${m.version} is superseded by the peer's history`;
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
      epoch: change.epoch ?? 0,
      ...(change.baseSha256 ? { baseSha256: change.baseSha256 } : {}),
    },
  ]);
  await checkpoint("ship:before-mark", { ...ref, version: m.version });
  await ports.userData.markShipped(ref, m.version, ports.clock.now().toISOString(), bytes);
  return `shipped v${m.version} (${bytes} B)`;
}

/**
 * Target region: applies shipped changes once each, in version order, and verifies the result's
 * content checksum against the source's before it replaces the local copy. Duplicates and older
 * versions are acknowledged again; a version ahead of the next one waits for its turn. Where the
 * two histories differ, the later epoch's wins (user-data-forks.ts): an earlier-epoch change is
 * answered as superseded, and this region's own earlier-epoch versions become a fork.
 */
export async function applyUserData(ports: ReplicationPorts, m: Msg<"apply-user-data">): Promise<string> {
  const ref = userRef(m);
  let record = await ports.userData.get(ref);
  const epoch = m.epoch ?? 0;
  let forked: string | undefined;
  if (record && m.version <= record.version) {
    const local = m.version === record.version ? record : await ports.userData.getChange(ref, m.version);
    // A record gone by expiry is of a change long replicated both ways: this one is a duplicate.
    if (local && local.sha256 !== m.sha256) {
      const localEpoch = local.epoch ?? 0;
      if (epoch < localEpoch) return supersede(ports, m, `this region's epoch-${localEpoch} v${m.version}`);
      if (epoch === localEpoch)
        throw new Error(`v${m.version} of ${m.userId} diverges from ${m.sourceRegion}'s (checksum differs)`);
      forked = await forkOverriddenHistory(ports, record, m);
      record = await ports.userData.get(ref);
    } else {
      // A delta shipped again (its acknowledgement was lost) is applied and superseded here: it
      // goes; the latest one's predecessor too (a crash may have come between the apply and its
      // removal).
      if (m.version < record.version) await removeAppliedDelta(ports, m, m.version, m.sha256);
      else await removeAppliedDelta(ports, m, m.version - 1);
      await acknowledge(ports, m, record.replicatedAt ?? ports.clock.now().toISOString());
      return `duplicate: already at v${record.version}`;
    }
  }
  const applied = record?.version ?? 0;
  if (m.version > applied + 1) throw new RetryLater(`v${m.version} waits for v${applied + 1}`);
  if (record && m.baseSha256 && m.baseSha256 !== record.sha256) {
    // The peer made this change on a version that this region replaced by its own.
    if (epoch < (record.epoch ?? 0)) return supersede(ports, m, `this region's v${applied}`);
    throw new Error(`v${m.version} of ${m.userId} was made on a v${applied} this region never had`);
  }
  if (record?.attachedSessionId && epoch < (await drEpoch(ports, m.tenantId)).epoch) {
    // Served here since a failover, and the user is logged on: their session's change wins.
    return supersede(ports, m, `the session ${record.attachedSessionId} writing here since failover`);
  }
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
  // Not synced: the delta is only an input, under a name of its own, and the disk built from it
  // is verified by content checksum below; a crash leaves an orphan that no version points at.
  const fetched = await ports.inbox.fetchFile(m.key, ports.userDataStore.incomingDeltaPath(ref, m.version), {
    sync: false,
  });
  let deltaBytes: number;
  try {
    const built = await ports.userDataStore.applyDelta(ref, applied, fetched.path, m.sizeBytes);
    if (built.sha256 !== m.sha256) {
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
    epoch,
    ...(m.baseSha256 ? { baseSha256: m.baseSha256 } : {}),
  };
  const recorded = await ports.userData.recordChange(change, undefined);
  if (!recorded) {
    const now = await ports.userData.get(ref);
    if ((now?.version ?? 0) < m.version) throw new Error(`user data of ${m.userId} moved while applying`);
  }
  await tidyHistory(ports, ref, recorded ? afterRecord(record, change) : undefined);
  // Both regions have the previous version and this one supersedes it: its delta object goes.
  await removeAppliedDelta(ports, m, m.version - 1);
  await acknowledge(ports, m, appliedAt);
  await ports.userDataStore.flattenIfDeep(ref, m.version);
  return forked ? `applied v${m.version}; this region's history kept as ${forked}` : `applied v${m.version}`;
}

/**
 * Answers the source that its change is not applied: this region's history of a later epoch
 * holds the user's data. The source keeps its change (it becomes a fork there when this region's
 * version arrives); the delta in this region's bucket is not needed.
 */
async function supersede(ports: ReplicationPorts, m: Msg<"apply-user-data">, by: string) {
  await requirePeer(ports).send([
    {
      kind: "user-data-applied",
      ...userRef(m),
      version: m.version,
      sha256: m.sha256,
      appliedAt: ports.clock.now().toISOString(),
      superseded: true,
    },
  ]);
  await ports.inbox.remove(m.key);
  return `superseded: v${m.version} (epoch ${m.epoch ?? 0}) gives way to ${by}`;
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
  if (m.superseded) {
    await ports.userData.markSuperseded(ref, m.version, m.appliedAt);
    return `v${m.version} superseded by the peer's later history`;
  }
  const marked = await ports.userData.markReplicated(ref, m.version, m.sha256, m.appliedAt);
  if (marked.conflict) throw new Error(`peer verified v${m.version} of ${m.userId} with another checksum`);
  await ports.userDataStore.removeDelta(ref, m.version);
  await tidyHistory(ports, ref, marked.record);
  const change = marked.before;
  if (change && !change.replicatedAt) {
    const lagMs = Date.parse(m.appliedAt) - Date.parse(change.committedAt);
    if (lagMs >= 0) ports.metrics.record(m.tenantId, "replicationLagSeconds", lagMs / 1000);
  }
  return `v${m.version} replicated`;
}
