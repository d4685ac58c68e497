import type { Ports } from "../ports/index.ts";
import { DomainError, notFound } from "./errors.ts";
import { newId } from "./ids.ts";
import type { Image, ImageSource, ImageVersion, QuotaLimits } from "./model.ts";
import { checkImageSize, imageAllowance } from "./quotas.ts";
import { replicateDeletions } from "./replication-config.ts";

export async function createImage(
  ports: Pick<Ports, "images" | "clock" | "quotas">,
  tenantId: string,
  input: { name: string },
  quotaDefaults: QuotaLimits,
): Promise<Image> {
  const image: Image = {
    tenantId,
    imageId: newId("img"),
    name: input.name,
    latestVersion: 0,
    createdAt: ports.clock.now().toISOString(),
  };
  // Checked, then enforced by the write: another image created meanwhile may take the last one.
  for (let attempt = 0; attempt < 5; attempt++) {
    const maxImages = await imageAllowance(ports, quotaDefaults, tenantId);
    if (await ports.images.createImage(image, maxImages)) return image;
  }
  throw new DomainError("tryAgain", "the tenant's images kept changing under this request; retry");
}

export function listImages(ports: Pick<Ports, "images">, tenantId: string): Promise<Image[]> {
  return ports.images.listImages(tenantId);
}

export async function getImage(ports: Pick<Ports, "images">, tenantId: string, imageId: string) {
  const image = await ports.images.getImage(tenantId, imageId);
  if (!image) throw notFound("image", imageId);
  return { ...image, versions: await ports.images.listVersions(tenantId, imageId) };
}

/** Publishing is asynchronous: the version is PUBLISHING until the clone worker has imported it. */
export async function publishVersion(
  ports: Pick<Ports, "images" | "jobs" | "clock" | "storage" | "quotas">,
  tenantId: string,
  imageId: string,
  source: ImageSource,
  quotaDefaults: QuotaLimits,
): Promise<ImageVersion> {
  if (!(await ports.images.getImage(tenantId, imageId))) throw notFound("image", imageId);
  const { virtualSizeBytes } = await ports.storage.validateSource(tenantId, source);
  await checkImageSize(ports, quotaDefaults, tenantId, virtualSizeBytes);
  const createdAt = ports.clock.now().toISOString();
  const version = await ports.images.addVersion(tenantId, imageId, (n) => ({
    tenantId,
    imageId,
    version: n,
    state: "PUBLISHING",
    source,
    createdAt,
  }));
  await ports.jobs.send([{ kind: "import-image-version", tenantId, imageId, version: version.version }]);
  return version;
}

async function requireVersion(ports: Pick<Ports, "images">, tenantId: string, imageId: string, n: number) {
  const version = await ports.images.getVersion(tenantId, imageId, n);
  if (!version) throw notFound("image version", `${imageId}@${n}`);
  return version;
}

/**
 * Where a version is in use: the datastores of desktops on it, and of pools that target it (their
 * refreshes and new desktops will need its replicas). A draining pool needs nothing new.
 */
async function versionUse(
  ports: Pick<Ports, "pools" | "desktops">,
  tenantId: string,
  imageId: string,
  n: number,
): Promise<{ desktops: number; pools: string[]; datastores: Set<string> }> {
  const datastores = new Set<string>();
  const pools: string[] = [];
  let desktops = 0;
  for (const pool of await ports.pools.list(tenantId)) {
    if (pool.imageId !== imageId) continue;
    if (pool.state === "ACTIVE" && pool.imageVersion === n) {
      pools.push(pool.poolId);
      for (const ds of pool.datastoreIds ?? []) datastores.add(ds);
    }
    for (const d of await ports.desktops.list(tenantId, pool.poolId)) {
      if (d.imageVersion !== n) continue;
      desktops += 1;
      datastores.add(d.datastoreId);
    }
  }
  return { desktops, pools, datastores };
}

/** A retired version makes no new desktops; its replicas go once no desktop reads through them. */
export async function retireVersion(
  ports: Pick<Ports, "images" | "pools" | "desktops" | "replicas" | "storage" | "clock">,
  tenantId: string,
  imageId: string,
  n: number,
): Promise<ImageVersion> {
  const version = await requireVersion(ports, tenantId, imageId, n);
  if (version.state !== "READY")
    throw new DomainError(
      "imageVersionNotReady",
      `image ${imageId} version ${n} is ${version.state}, not READY`,
    );
  const at = version.retiredAt ?? ports.clock.now().toISOString();
  await ports.images.retireVersion(tenantId, imageId, n, at);
  await releaseUnusedReplicas(ports, tenantId, imageId, n);
  return { ...version, retiredAt: at };
}

/** Removes the replicas of a retired version on datastores where nothing uses it any more. */
export async function releaseUnusedReplicas(
  ports: Pick<Ports, "images" | "pools" | "desktops" | "replicas" | "storage">,
  tenantId: string,
  imageId: string,
  n: number,
): Promise<number> {
  const version = await ports.images.getVersion(tenantId, imageId, n);
  if (!version?.retiredAt) return 0;
  const use = await versionUse(ports, tenantId, imageId, n);
  let removed = 0;
  for (const replica of await ports.replicas.list(tenantId, imageId, n)) {
    if (use.datastores.has(replica.datastoreId)) continue;
    await ports.storage.removeReplica(version, replica.datastoreId);
    await ports.replicas.remove(replica);
    removed += 1;
  }
  return removed;
}

/**
 * Deletes a version with its replicas and its image file; refused while anything uses it. The peer
 * region deletes its copy too (a tombstone, recorded before anything is removed here).
 */
export async function deleteVersion(
  ports: Pick<
    Ports,
    "images" | "pools" | "desktops" | "replicas" | "storage" | "dr" | "peer" | "replication"
  >,
  tenantId: string,
  imageId: string,
  n: number,
): Promise<void> {
  const version = await requireVersion(ports, tenantId, imageId, n);
  if (version.state === "PUBLISHING")
    throw new DomainError("imageVersionInUse", `image ${imageId} version ${n} is still publishing`);
  const use = await versionUse(ports, tenantId, imageId, n);
  if (use.desktops > 0 || use.pools.length > 0) {
    const pools = use.pools.length > 0 ? `; pools targeting it: ${use.pools.join(", ")}` : "";
    throw new DomainError(
      "imageVersionInUse",
      `image ${imageId} version ${n} is used by ${use.desktops} desktop(s)${pools}`,
    );
  }
  await replicateDeletions(ports, tenantId, { versions: [version] });
  for (const replica of await ports.replicas.list(tenantId, imageId, n)) {
    await ports.storage.removeReplica(version, replica.datastoreId);
    await ports.replicas.remove(replica);
  }
  await ports.storage.removeImage(version);
  await ports.images.removeVersion(tenantId, imageId, n);
}
