import type { ReplicationMessage } from "../messages/replication.ts";
import { replicationKeys } from "../messages/replication.ts";
import type { Ports, UserDataRef } from "../ports.ts";
import { RetryLater } from "./errors.ts";
import type { Image, ImageVersion, Pool, Tenant } from "./model.ts";
import type { UserData, UserDataChange } from "./user-data.ts";

type Msg<K extends ReplicationMessage["kind"]> = Extract<ReplicationMessage, { kind: K }>;

const refOf = (m: UserDataRef): UserDataRef => ({ tenantId: m.tenantId, userId: m.userId });

function requirePeer(ports: Pick<Ports, "peer">) {
  if (!ports.peer) throw new Error("this region has no peer region configured");
  return ports.peer;
}

/**
 * Source region: ships one committed change (its delta, not the disk) into the peer's bucket and
 * asks the peer to apply it. The peer being unreachable fails the message, which SQS redelivers:
 * the backlog grows, nothing is lost.
 */
export async function shipUserData(ports: Ports, m: Msg<"ship-user-data">): Promise<string> {
  const ref = refOf(m);
  const [record, change] = await Promise.all([
    ports.userData.get(ref),
    ports.userData.getChange(ref, m.version),
  ]);
  if (!record || !change) return "skipped: unknown change";
  if (record.replicatedVersion >= m.version) return `skipped: v${m.version} already replicated`;
  const peer = requirePeer(ports);
  const key = replicationKeys.userDataDelta(m.tenantId, m.userId, m.version);
  const bytes = await peer.putFile(key, ports.userDataStore.deltaPath(ref, m.version));
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
  await ports.userData.markShipped(ref, m.version, ports.clock.now().toISOString(), bytes);
  return `shipped v${m.version} (${bytes} B)`;
}

/**
 * Target region: applies shipped changes once each, in version order, and verifies the result's
 * content checksum against the source's before it replaces the local copy. Duplicates and older
 * versions are acknowledged again; a version ahead of the next one waits for its turn.
 */
export async function applyUserData(ports: Ports, m: Msg<"apply-user-data">): Promise<string> {
  const ref = refOf(m);
  let record = await ports.userData.get(ref);
  const applied = record?.version ?? 0;
  if (m.version <= applied) {
    if (m.version === applied && record?.sha256 !== m.sha256)
      throw new Error(`v${m.version} of ${m.userId} diverges from ${m.sourceRegion}'s (checksum differs)`);
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
  const fetched = await ports.inbox.fetchFile(m.key);
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
  await acknowledge(ports, m, appliedAt);
  return `applied v${m.version}`;
}

async function acknowledge(ports: Ports, m: Msg<"apply-user-data">, appliedAt: string) {
  await requirePeer(ports).send([
    { kind: "user-data-applied", ...refOf(m), version: m.version, sha256: m.sha256, appliedAt },
  ]);
}

/** Source region: the peer verified a version; its delta is no longer needed here. */
export async function userDataApplied(ports: Ports, m: Msg<"user-data-applied">): Promise<string> {
  const ref = refOf(m);
  const change = await ports.userData.getChange(ref, m.version);
  if (change && change.sha256 !== m.sha256)
    throw new Error(`peer verified v${m.version} of ${m.userId} with another checksum`);
  await ports.userData.markReplicated(ref, m.version, m.appliedAt);
  await ports.userDataStore.removeDelta(ref, m.version);
  return `v${m.version} replicated`;
}

/** What a region ships of a tenant's configuration (images travel beside it, once per version). */
export interface ConfigDocument {
  tenant: Tenant;
  apiKeyHash: string;
  images: Image[];
  versions: ImageVersion[];
  pools: Pool[];
}

/** Source region: the tenant's configuration and any image version the peer does not have yet. */
export async function shipConfig(ports: Ports, m: Msg<"ship-config">): Promise<string> {
  const peer = requirePeer(ports);
  const owner = await ports.dr.getTenantWithKey(m.tenantId);
  if (!owner) return "skipped: tenant unknown here";
  const state = await ports.dr.getState(m.tenantId);
  // A region holding a replica of the tenant (drill pools included) never ships it back.
  if (state?.configAppliedAt) return "skipped: this region holds the tenant's replica";
  const images = await ports.images.listImages(m.tenantId);
  const versions = (await Promise.all(images.map((i) => ports.images.listVersions(m.tenantId, i.imageId))))
    .flat()
    .filter((v) => v.state === "READY");
  const shipped = new Set(state?.shippedImages ?? []);
  let bytes = 0;
  for (const v of versions) {
    const id = `${v.imageId}@${v.version}`;
    if (shipped.has(id)) continue;
    bytes += await peer.putFile(
      replicationKeys.image(v.tenantId, v.imageId, v.version),
      ports.region.imagePath(v),
    );
    shipped.add(id);
    await ports.dr.updateState(m.tenantId, { shippedImages: [...shipped] });
  }
  const pools = (await ports.pools.list(m.tenantId)).filter((p) => p.state === "ACTIVE");
  const doc: ConfigDocument = { ...owner, images, versions, pools };
  const key = replicationKeys.config(m.tenantId, ports.clock.now().toISOString().replace(/[:.]/g, "-"));
  bytes += await peer.putJson(key, doc);
  await peer.send([{ kind: "apply-config", tenantId: m.tenantId, key, sourceRegion: ports.region.name }]);
  return `shipped config (${versions.length} image versions, ${pools.length} pools, ${bytes} B)`;
}

/**
 * Target region: the tenant (with its key hash, so its key works here), images (each version's
 * file checked against the source's sha256) and pools, kept as standby configuration that a
 * drill or a failover turns into desktops.
 */
export async function applyConfig(ports: Ports, m: Msg<"apply-config">): Promise<string> {
  const doc = await ports.inbox.getJson<ConfigDocument>(m.key);
  await ports.dr.putTenant(doc.tenant, doc.apiKeyHash);
  for (const image of doc.images) {
    const local = await ports.images.getImage(image.tenantId, image.imageId);
    await ports.dr.putImage({
      ...image,
      latestVersion: Math.max(local?.latestVersion ?? 0, image.latestVersion),
    });
  }
  let fetchedVersions = 0;
  for (const v of doc.versions) {
    const local = await ports.images.getVersion(v.tenantId, v.imageId, v.version);
    if (local?.state === "READY" && local.sha256 === v.sha256) continue;
    const file = await ports.inbox.fetchFile(replicationKeys.image(v.tenantId, v.imageId, v.version));
    try {
      await ports.region.installImage(v, file.path, v.sha256 ?? "");
    } finally {
      await file.done();
    }
    await ports.dr.putVersion(v);
    fetchedVersions++;
  }
  const state = await ports.dr.getState(m.tenantId);
  const standby = Object.fromEntries((state?.standbyPools ?? []).map((p) => [p.poolId, p]));
  for (const p of doc.pools) standby[p.poolId] = p;
  await ports.dr.updateState(m.tenantId, {
    standbyPools: Object.values(standby),
    configAppliedAt: ports.clock.now().toISOString(),
  });
  return `applied config from ${m.sourceRegion} (${fetchedVersions} image versions fetched)`;
}

/** Asks for the tenant's configuration to be (re)sent to the peer; a no-op without a peer. */
export async function replicateConfig(ports: Pick<Ports, "peer" | "replication">, tenantId: string) {
  if (ports.peer) await ports.replication.send([{ kind: "ship-config", tenantId }]);
}

export interface ReplicationBacklog {
  region: string;
  peer: string | undefined;
  pendingChanges: number;
  oldestPendingAgeMs: number;
  bytesShipped: number;
  rpoP50Ms: number | undefined;
  rpoP99Ms: number | undefined;
  users: {
    userId: string;
    version: number;
    replicatedVersion: number;
    lagVersions: number;
    lastChangeAt: string;
    oldestUnreplicatedAt?: string;
  }[];
  pending: { userId: string; version: number; committedAt: string; shippedAt?: string }[];
}

const pct = (sorted: number[], p: number) =>
  sorted.length === 0
    ? undefined
    : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

/** This region's replication to its peer, for one tenant: what is pending and how late it is. */
export async function replicationBacklog(ports: Ports, tenantId: string): Promise<ReplicationBacklog> {
  const [users, changes] = await Promise.all([
    ports.userData.list(tenantId),
    ports.userData.listChanges(tenantId),
  ]);
  const now = ports.clock.now().getTime();
  const byUser = new Map<string, UserData>(users.map((u) => [u.userId, u]));
  const outgoing = changes.filter((c) => c.origin === ports.region.name);
  const pending = outgoing.filter((c) => (byUser.get(c.userId)?.replicatedVersion ?? 0) < c.version);
  const rpos = outgoing
    .filter((c) => c.replicatedAt)
    .map((c) => Date.parse(c.replicatedAt as string) - Date.parse(c.committedAt))
    .sort((a, b) => a - b);
  const oldest = pending.reduce((min, c) => Math.min(min, Date.parse(c.committedAt)), now);
  return {
    region: ports.region.name,
    peer: ports.peer?.name,
    pendingChanges: pending.length,
    oldestPendingAgeMs: now - oldest,
    bytesShipped: outgoing.reduce((sum, c) => sum + (c.shippedBytes ?? 0), 0),
    rpoP50Ms: pct(rpos, 50),
    rpoP99Ms: pct(rpos, 99),
    users: users.map((u) => {
      const first = pending.filter((c) => c.userId === u.userId).sort((a, b) => a.version - b.version)[0];
      return {
        userId: u.userId,
        version: u.version,
        replicatedVersion: u.replicatedVersion,
        lagVersions: u.version - u.replicatedVersion,
        lastChangeAt: u.lastChangeAt,
        ...(first ? { oldestUnreplicatedAt: first.committedAt } : {}),
      };
    }),
    pending: pending.map((c) => ({
      userId: c.userId,
      version: c.version,
      committedAt: c.committedAt,
      ...(c.shippedAt ? { shippedAt: c.shippedAt } : {}),
    })),
  };
}

/** GET /v1/dr/replication: the backlog, and this region's DR state for the tenant. */
export async function replicationStatus(ports: Ports, tenantId: string) {
  const [backlog, state] = await Promise.all([
    replicationBacklog(ports, tenantId),
    ports.dr.getState(tenantId),
  ]);
  const { standbyPools, shippedImages, ...dr } = state ?? { tenantId };
  return {
    ...backlog,
    dr: {
      ...dr,
      standbyPools: (standbyPools ?? []).map((p) => p.poolId),
      imagesShipped: shippedImages?.length ?? 0,
    },
  };
}
