/**
 * Configuration replication: a tenant's key hash, images (each version's file once) and pools go
 * to the peer region, which keeps the pools as standby configuration for drills and failover.
 */
import type { ReplicationMessage } from "../messages/replication.ts";
import { replicationKeys } from "../messages/replication.ts";
import type { Ports } from "../ports/index.ts";
import { requirePeer } from "./common.ts";
import type { Image, ImageVersion, Pool, Tenant } from "./model.ts";

type Msg<K extends ReplicationMessage["kind"]> = Extract<ReplicationMessage, { kind: K }>;
type ConfigPorts = Pick<Ports, "dr" | "images" | "pools" | "peer" | "inbox" | "clock" | "region">;

/** What a region ships of a tenant's configuration (images travel beside it, once per version). */
export interface ConfigDocument {
  tenant: Tenant;
  apiKeyHash: string;
  images: Image[];
  versions: ImageVersion[];
  pools: Pool[];
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
export async function applyConfig(ports: ConfigPorts, m: Msg<"apply-config">): Promise<string> {
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
