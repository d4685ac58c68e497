/**
 * Replicas as disk jobs need them: an image version that is READY, and its replica on a datastore,
 * copied once however many workers ask for it at the same time.
 */
import { randomUUID } from "node:crypto";
import { checkpoint } from "../faults.ts";
import type { Ports } from "../ports/index.ts";
import { RetryLater } from "./errors.ts";
import type { ImageVersion } from "./model.ts";

/** An image version a disk can be made from; one not READY yet comes back later. */
export async function readyVersion(
  ports: Pick<Ports, "images">,
  tenantId: string,
  imageId: string,
  n: number,
) {
  const version = await ports.images.getVersion(tenantId, imageId, n);
  if (version?.state !== "READY") throw new RetryLater(`image version ${imageId}@${n} not READY`);
  return version;
}

/**
 * Makes the replica exist (checksum-verified by the driver) and records it. One worker copies
 * under a lease per (version, datastore); the others wait for its copy instead of copying the
 * same image again, for a while in-process and then by redelivery. Every prepare job records, so
 * a crash between the copy and the record heals.
 */
export async function ensureReplica(
  ports: Pick<Ports, "storage" | "replicas" | "clock">,
  version: ImageVersion,
  datastoreId: string,
  settings: { replicaCopyLeaseMs: number; replicaWaitMs: number },
  alwaysRecord: boolean,
) {
  const ref = { tenantId: version.tenantId, imageId: version.imageId, version: version.version, datastoreId };
  const record = (created: boolean) =>
    ports.replicas.record(
      { ...ref, sha256: version.sha256 ?? "", createdAt: ports.clock.now().toISOString() },
      created,
    );
  const holder = randomUUID();
  const deadline = Date.now() + settings.replicaWaitMs;
  for (let look = 0; ; look++) {
    if (await ports.storage.hasReplica(version, datastoreId)) {
      if (alwaysRecord) await record(false);
      return;
    }
    if (await ports.replicas.leaseCopy(ref, holder, settings.replicaCopyLeaseMs)) break;
    if (Date.now() > deadline)
      throw new RetryLater(
        `the replica of ${version.imageId}@${version.version} on ${datastoreId} is being copied`,
      );
    await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** look)));
  }
  // The lease is short and renewed while the copy runs: a worker that dies copying frees it soon.
  const renew = setInterval(
    () => void ports.replicas.leaseCopy(ref, holder, settings.replicaCopyLeaseMs).catch(() => undefined),
    settings.replicaCopyLeaseMs / 3,
  );
  try {
    await checkpoint("replica:copying", ref);
    const { created } = await ports.storage.ensureReplica(version, datastoreId);
    if (created || alwaysRecord) await record(created);
  } finally {
    clearInterval(renew);
    await ports.replicas.releaseCopy(ref, holder);
  }
}
