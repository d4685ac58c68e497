import type { Ports } from "../ports/index.ts";
import type { ImageVersion } from "./model.ts";

interface SpaceFigures {
  /** Bytes really allocated on disk (st_blocks * 512): replicas and deltas. */
  usedBytes: number;
  /** Virtual sizes of the desktops' disks. */
  provisionedBytes: number;
  /** What the same desktops would take as full clones (one compact copy of their version each). */
  fullCloneBytes: number;
  /** fullCloneBytes - usedBytes. */
  savedBytes: number;
  replicaBytes: number;
  deltaBytes: number;
  desktops: number;
}

const empty = (): SpaceFigures => ({
  usedBytes: 0,
  provisionedBytes: 0,
  fullCloneBytes: 0,
  savedBytes: 0,
  replicaBytes: 0,
  deltaBytes: 0,
  desktops: 0,
});

function settle(f: SpaceFigures): SpaceFigures {
  f.usedBytes = f.replicaBytes + f.deltaBytes;
  f.savedBytes = f.fullCloneBytes - f.usedBytes;
  return f;
}

/**
 * A tenant's space, per datastore and per pool. A pool is charged the replicas its desktops read
 * through, so two pools on one version both show that replica; the datastore view counts it once.
 */
export async function storageReport(
  ports: Pick<Ports, "pools" | "desktops" | "images" | "replicas" | "storage">,
  tenantId: string,
) {
  const versions = new Map<string, Promise<ImageVersion | undefined>>();
  const versionOf = (imageId: string, n: number) => {
    const key = `${imageId}@${n}`;
    if (!versions.has(key)) versions.set(key, ports.images.getVersion(tenantId, imageId, n));
    return versions.get(key) as Promise<ImageVersion | undefined>;
  };
  const replicaKey = (imageId: string, n: number, ds: string) => `${imageId}@${n}@${ds}`;
  const replicaBytes = new Map<string, number>();
  for (const r of await ports.replicas.list(tenantId))
    replicaBytes.set(
      replicaKey(r.imageId, r.version, r.datastoreId),
      await ports.storage.replicaBytes(r, r.datastoreId),
    );

  const byDatastore = new Map<string, SpaceFigures>();
  const at = (ds: string) => byDatastore.get(ds) ?? (byDatastore.set(ds, empty()).get(ds) as SpaceFigures);
  for (const [key, bytes] of replicaBytes) at(key.split("@")[2] as string).replicaBytes += bytes;

  const pools = [];
  for (const pool of await ports.pools.list(tenantId)) {
    const figures = empty();
    const replicasUsed = new Set<string>();
    for (const d of await ports.desktops.list(tenantId, pool.poolId)) {
      const version = await versionOf(d.imageId, d.imageVersion);
      const delta = await ports.storage.deltaBytes(d);
      for (const f of [figures, at(d.datastoreId)]) {
        f.desktops += 1;
        f.deltaBytes += delta;
        f.provisionedBytes += d.provisionedBytes ?? version?.virtualSizeBytes ?? 0;
        f.fullCloneBytes += version?.fileBytes ?? 0;
      }
      if (d.cloneType !== "full") replicasUsed.add(replicaKey(d.imageId, d.imageVersion, d.datastoreId));
    }
    for (const key of replicasUsed) figures.replicaBytes += replicaBytes.get(key) ?? 0;
    pools.push({ poolId: pool.poolId, name: pool.name, cloneType: pool.cloneType, ...settle(figures) });
  }
  const datastores = [...byDatastore.entries()].map(([datastoreId, f]) => ({ datastoreId, ...settle(f) }));
  const total = settle(
    datastores.reduce((sum, d) => {
      for (const k of [
        "provisionedBytes",
        "fullCloneBytes",
        "replicaBytes",
        "deltaBytes",
        "desktops",
      ] as const)
        sum[k] += d[k];
      return sum;
    }, empty()),
  );
  return { total, datastores, pools };
}
