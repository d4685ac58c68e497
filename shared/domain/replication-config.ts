/**
 * Configuration replication: a tenant's key hash, images (each version's file once) and pools go
 * to the peer region, which keeps the pools as standby configuration for drills and failover.
 *
 * Deletions travel the same way: a pool or image version deleted here leaves a tombstone in the
 * tenant's DR state, and every configuration document carries all of them. The target keeps the
 * tombstones it hears of and never lets a tombstoned pool or version back in, so a document
 * delivered twice, late, or before the one that created what it deletes changes nothing (pool ids
 * and version numbers are never reused).
 */
import type { ReplicationMessage } from "../messages/replication.ts";
import { replicationKeys } from "../messages/replication.ts";
import type { Ports } from "../ports/index.ts";
import { requirePeer } from "./common.ts";
import type { DrState } from "./dr-model.ts";
import { RetryLater } from "./errors.ts";
import type { Image, ImageVersion, Pool, Tenant } from "./model.ts";

type Msg<K extends ReplicationMessage["kind"]> = Extract<ReplicationMessage, { kind: K }>;
type ConfigPorts = Pick<
  Ports,
  "dr" | "images" | "pools" | "peer" | "inbox" | "clock" | "region" | "replicas" | "storage" | "desktops"
>;

/** What a region ships of a tenant's configuration (images travel beside it, once per version). */
export interface ConfigDocument {
  tenant: Tenant;
  apiKeyHash: string;
  images: Image[];
  versions: ImageVersion[];
  pools: Pool[];
  /** Every pool and version ("<imageId>@<n>") deleted in the source (absent in older documents). */
  deletedPools?: string[];
  deletedVersions?: string[];
}

type VersionRef = Pick<ImageVersion, "tenantId" | "imageId" | "version">;

export const versionTombstone = (v: Pick<ImageVersion, "imageId" | "version">) => `${v.imageId}@${v.version}`;

/** The standby pools a drill or a failover may use: the replicated ones minus the deleted ones. */
export function liveStandbyPools(state: DrState | undefined): Pool[] {
  const deleted = new Set(state?.deletedPools ?? []);
  return (state?.standbyPools ?? []).filter((p) => !deleted.has(p.poolId));
}

/**
 * Records that pools or image versions were deleted here and has the configuration shipped, so the
 * peer drops its copies. A no-op without a peer.
 */
export async function replicateDeletions(
  ports: Pick<Ports, "dr" | "peer" | "replication">,
  tenantId: string,
  deletions: { pools?: string[]; versions?: VersionRef[] },
): Promise<void> {
  if (!ports.peer) return;
  await ports.dr.addDeletions(tenantId, {
    ...(deletions.pools ? { pools: deletions.pools } : {}),
    ...(deletions.versions ? { versions: deletions.versions.map(versionTombstone) } : {}),
  });
  await replicateConfig(ports, tenantId);
}

/** Source region: the tenant's configuration and any image version the peer does not have yet. */
export async function shipConfig(ports: ConfigPorts, m: Msg<"ship-config">): Promise<string> {
  const peer = requirePeer(ports);
  const owner = await ports.dr.getTenantWithKey(m.tenantId);
  if (!owner) return "skipped: tenant unknown here";
  const state = await ports.dr.getState(m.tenantId);
  // A region holding a replica of the tenant (drill pools included) never ships it back.
  if (state?.configAppliedAt) return "skipped: this region holds the tenant's replica";
  const images = await ports.images.listImages(m.tenantId);
  const deletedPools = state?.deletedPools ?? [];
  const deletedVersions = state?.deletedVersions ?? [];
  const versions = (await Promise.all(images.map((i) => ports.images.listVersions(m.tenantId, i.imageId))))
    .flat()
    .filter((v) => v.state === "READY" && !deletedVersions.includes(versionTombstone(v)));
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
    await ports.dr.addShippedImage(m.tenantId, id);
  }
  const pools = (await ports.pools.list(m.tenantId)).filter(
    (p) => p.state === "ACTIVE" && !deletedPools.includes(p.poolId),
  );
  const doc: ConfigDocument = { ...owner, images, versions, pools, deletedPools, deletedVersions };
  const key = replicationKeys.config(m.tenantId, ports.clock.now().toISOString().replace(/[:.]/g, "-"));
  bytes += await peer.putJson(key, doc);
  await peer.send([{ kind: "apply-config", tenantId: m.tenantId, key, sourceRegion: ports.region.name }]);
  const deleted = deletedPools.length + deletedVersions.length;
  return `shipped config (${versions.length} image versions, ${pools.length} pools, ${deleted} deletions, ${bytes} B)`;
}

/**
 * Target region: the tenant (with its key hash, so its key works here), images (each version's
 * file checked against the source's sha256) and pools, kept as standby configuration that a
 * drill or a failover turns into desktops. The document's tombstones are recorded first; nothing
 * tombstoned is installed or kept, whatever the order the documents arrive in.
 */
export async function applyConfig(ports: ConfigPorts, m: Msg<"apply-config">): Promise<string> {
  const doc = await ports.inbox.getJson<ConfigDocument>(m.key);
  await ports.dr.putTenant(doc.tenant, doc.apiKeyHash);
  await ports.dr.addDeletions(m.tenantId, {
    pools: doc.deletedPools ?? [],
    versions: doc.deletedVersions ?? [],
  });
  const known = await ports.dr.getState(m.tenantId);
  for (const image of doc.images) {
    const local = await ports.images.getImage(image.tenantId, image.imageId);
    await ports.dr.putImage({
      ...image,
      latestVersion: Math.max(local?.latestVersion ?? 0, image.latestVersion),
    });
  }
  let fetchedVersions = 0;
  for (const v of doc.versions) {
    if (known?.deletedVersions?.includes(versionTombstone(v))) continue;
    const local = await ports.images.getVersion(v.tenantId, v.imageId, v.version);
    if (local?.state === "READY" && local.sha256 === v.sha256) continue;
    // Streamed into the image store, beside the version's place, never staged in temporary storage.
    const file = await ports.inbox.fetchFile(
      replicationKeys.image(v.tenantId, v.imageId, v.version),
      ports.region.incomingImagePath(v),
    );
    try {
      await ports.region.installImage(v, file.path, v.sha256 ?? "");
    } finally {
      await file.done();
    }
    await ports.dr.putVersion(v);
    fetchedVersions++;
  }
  // Read again after installing: a tombstone recorded meanwhile (by a concurrent apply of a newer
  // document) also removes what this apply of an older one just installed.
  const state = await ports.dr.getState(m.tenantId);
  const removed = await removeDeletedVersions(ports, m.tenantId, state?.deletedVersions ?? []);
  await mergeStandbyPools(ports, m.tenantId, doc.pools, state);
  const deletions = removed > 0 ? `, ${removed} deleted image versions removed` : "";
  return `applied config from ${m.sourceRegion} (${fetchedVersions} image versions fetched${deletions})`;
}

/**
 * Adds the document's pools to the standby pools (a later document's copy of a pool replaces an
 * earlier one's), without the tombstoned ones, starting from the state `read`. Documents are applied
 * concurrently: a write made since the read sends this merge round again, with the state read
 * anew, so no apply overwrites another's pools.
 */
async function mergeStandbyPools(
  ports: ConfigPorts,
  tenantId: string,
  pools: Pool[],
  read: DrState | undefined,
) {
  let state = read;
  for (let attempt = 0; attempt < 20; attempt++, state = await ports.dr.getState(tenantId)) {
    const deletedPools = new Set(state?.deletedPools ?? []);
    const standby = Object.fromEntries((state?.standbyPools ?? []).map((p) => [p.poolId, p]));
    for (const p of pools) standby[p.poolId] = p;
    const merged = Object.values(standby).filter((p) => !deletedPools.has(p.poolId));
    const appliedAt = ports.clock.now().toISOString();
    if (await ports.dr.putStandbyPools(tenantId, merged, appliedAt, state?.standbyRevision ?? 0)) return;
  }
  throw new RetryLater("the standby pools kept changing while this document was applied");
}

/**
 * Target region: image versions the source deleted go here too — the record (so no failover or
 * drill can provision from it), the image file, its replicas where no desktop of this region reads
 * through them, and the copy the source put in this region's bucket. Each step is idempotent, and
 * files go even without a record (an apply may have installed the file but not yet the record).
 */
async function removeDeletedVersions(
  ports: ConfigPorts,
  tenantId: string,
  tombstones: string[],
): Promise<number> {
  if (tombstones.length === 0) return 0;
  // Datastores where desktops of this region (a running drill's, a failed-over pool's) read each version.
  const inUse = new Set<string>();
  for (const pool of await ports.pools.list(tenantId))
    for (const d of await ports.desktops.list(tenantId, pool.poolId))
      inUse.add(`${versionTombstone({ imageId: d.imageId, version: d.imageVersion })}@${d.datastoreId}`);
  let removed = 0;
  for (const tombstone of new Set(tombstones)) {
    const at = tombstone.lastIndexOf("@");
    const ref: VersionRef = {
      tenantId,
      imageId: tombstone.slice(0, at),
      version: Number(tombstone.slice(at + 1)),
    };
    const existing = await ports.images.getVersion(tenantId, ref.imageId, ref.version);
    for (const replica of await ports.replicas.list(tenantId, ref.imageId, ref.version)) {
      if (inUse.has(`${tombstone}@${replica.datastoreId}`)) continue;
      await ports.storage.removeReplica(ref, replica.datastoreId);
      await ports.replicas.remove(replica);
    }
    await ports.storage.removeImage(ref);
    await ports.inbox.remove(replicationKeys.image(tenantId, ref.imageId, ref.version));
    if (existing) {
      await ports.images.removeVersion(tenantId, ref.imageId, ref.version);
      removed++;
    }
  }
  return removed;
}

/** Asks for the tenant's configuration to be (re)sent to the peer; a no-op without a peer. */
export async function replicateConfig(ports: Pick<Ports, "peer" | "replication">, tenantId: string) {
  if (ports.peer) await ports.replication.send([{ kind: "ship-config", tenantId }]);
}
