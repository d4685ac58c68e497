import { checkpoint } from "../faults.ts";
import type { CloneJob } from "../messages/clone-job.ts";
import type { Ports } from "../ports.ts";
import { desktopRef } from "./common.ts";
import { DomainError, RetryLater } from "./errors.ts";
import { newId } from "./ids.ts";
import { releaseUnusedReplicas } from "./images.ts";
import type { Desktop, ImageVersion } from "./model.ts";
import { decideRefresh, needsDeltaSize } from "./refresh-policy.ts";
import { replicateConfig } from "./replication-config.ts";

type WorkerPorts = Pick<
  Ports,
  | "images"
  | "pools"
  | "desktops"
  | "storage"
  | "clock"
  | "replicas"
  | "datastores"
  | "jobs"
  | "peer"
  | "replication"
>;

export interface WorkerSettings {
  /** At most this many recomposes write to one datastore at a time (I/O storm control). */
  recomposeSlotsPerDatastore: number;
  /** A slot's lease: a worker that dies holding one frees it after this long. */
  recomposeLeaseMs: number;
  /** A desktop whose disk could not be made after this many deliveries is quarantined (ERROR). */
  quarantineAfterAttempts: number;
}

export const defaultWorkerSettings: WorkerSettings = {
  recomposeSlotsPerDatastore: 4,
  recomposeLeaseMs: 10 * 60_000,
  quarantineAfterAttempts: 3,
};

/**
 * The clone worker's one entry point. Every branch re-reads state and is safe to run twice:
 * SQS delivers at least once and a worker may die at any line.
 */
export async function runCloneJob(
  ports: WorkerPorts,
  job: CloneJob,
  settings: WorkerSettings = defaultWorkerSettings,
  /** Which delivery of this message this is (SQS ApproximateReceiveCount). */
  attempt = 1,
): Promise<string> {
  switch (job.kind) {
    case "import-image-version":
      return importVersion(ports, job);
    case "prepare-replica":
      return prepareReplica(ports, job);
    case "provision-desktop":
      return provisionDesktop(ports, job, attempt >= settings.quarantineAfterAttempts);
    case "replace-desktop":
      return replaceErrored(ports, job);
    case "refresh-desktop":
      return refreshDesktop(ports, job);
    case "recompose-desktop":
      return recomposeDesktop(ports, job, settings);
    case "delete-desktop":
      return deleteDesktop(ports, job);
  }
}

async function importVersion(ports: WorkerPorts, job: Extract<CloneJob, { kind: "import-image-version" }>) {
  const version = await ports.images.getVersion(job.tenantId, job.imageId, job.version);
  if (version?.state !== "PUBLISHING") return "skipped: version not publishing";
  try {
    const imported = await ports.storage.importImage(version);
    await ports.images.completeVersion(job.tenantId, job.imageId, job.version, {
      state: "READY",
      ...imported,
      readyAt: ports.clock.now().toISOString(),
    });
    // Each published version goes to the DR region once (with the tenant's configuration).
    await replicateConfig(ports, job.tenantId);
    return "imported";
  } catch (err) {
    // A source that is not a usable disk will not get better on retry: record why and stop.
    if (err instanceof DomainError) {
      await ports.images.completeVersion(job.tenantId, job.imageId, job.version, {
        state: "FAILED",
        error: err.message,
      });
      return `failed: ${err.message}`;
    }
    throw err;
  }
}

async function readyVersion(ports: WorkerPorts, tenantId: string, imageId: string, n: number) {
  const version = await ports.images.getVersion(tenantId, imageId, n);
  if (version?.state !== "READY") throw new RetryLater(`image version ${imageId}@${n} not READY`);
  return version;
}

/**
 * Makes the replica exist (checksum-verified by the driver) and records it. The record is written
 * by whoever created the file, and by every prepare job, so a crash between the two heals.
 */
async function ensureReplica(
  ports: WorkerPorts,
  version: ImageVersion,
  datastoreId: string,
  alwaysRecord: boolean,
) {
  const { created } = await ports.storage.ensureReplica(version, datastoreId);
  if (created || alwaysRecord) {
    await ports.replicas.record(
      {
        tenantId: version.tenantId,
        imageId: version.imageId,
        version: version.version,
        datastoreId,
        sha256: version.sha256 ?? "",
        createdAt: ports.clock.now().toISOString(),
      },
      created,
    );
  }
}

async function prepareReplica(ports: WorkerPorts, job: Extract<CloneJob, { kind: "prepare-replica" }>) {
  const version = await readyVersion(ports, job.tenantId, job.imageId, job.version);
  await ensureReplica(ports, version, job.datastoreId, true);
  return "replica ready";
}

/** Writes the desktop's disk on `version`: a delta on the datastore's replica, or a full copy. */
async function makeDisk(ports: WorkerPorts, desktop: Desktop, version: ImageVersion) {
  const target = { ...desktop, imageVersion: version.version };
  if (desktop.cloneType === "full") return ports.storage.createFullClone(target);
  await ensureReplica(ports, version, desktop.datastoreId, false);
  await ports.storage.createLinkedClone(target);
}

/** The version a desktop should be on: its pool's (a recompose may have moved it since). */
async function targetVersion(ports: WorkerPorts, desktop: Desktop) {
  const pool = await ports.pools.get(desktop.tenantId, desktop.poolId);
  const version = await readyVersion(
    ports,
    desktop.tenantId,
    desktop.imageId,
    pool?.imageVersion ?? desktop.imageVersion,
  );
  return { pool, version };
}

async function provisionDesktop(
  ports: WorkerPorts,
  job: Extract<CloneJob, { kind: "provision-desktop" }>,
  lastAttempt: boolean,
) {
  const desktop = await ports.desktops.get(job.tenantId, job.poolId, job.desktopId);
  if (desktop?.state !== "PROVISIONING") return `skipped: desktop is ${desktop?.state ?? "gone"}`;
  const { version } = await targetVersion(ports, desktop);
  try {
    await makeDisk(ports, desktop, version);
  } catch (err) {
    if (!lastAttempt || err instanceof RetryLater) throw err;
    // Retries did not help: quarantine it (visible in the pool's counts); the reconciler replaces it.
    await ports.desktops.transition(desktop, "PROVISIONING", "ERROR", { error: (err as Error).message });
    return `quarantined: ${(err as Error).message}`;
  }
  const moved = await ports.desktops.transition(desktop, "PROVISIONING", "AVAILABLE", {
    imageVersion: version.version,
    pristineAt: ports.clock.now().toISOString(),
  });
  return moved ? "provisioned" : "skipped: desktop moved while provisioning";
}

async function refreshDesktop(ports: WorkerPorts, job: Extract<CloneJob, { kind: "refresh-desktop" }>) {
  const desktop = await ports.desktops.get(job.tenantId, job.poolId, job.desktopId);
  if (desktop?.state !== "REFRESHING" || desktop.lastSessionId !== job.sessionId) {
    return `skipped: desktop is ${desktop?.state ?? "gone"}`;
  }
  const { pool, version } = await targetVersion(ports, desktop);
  const decision = pool
    ? decideRefresh(pool, desktop, {
        ...(needsDeltaSize(pool) ? { deltaBytes: await ports.storage.deltaBytes(desktop) } : {}),
        replicaBytes: version.fileBytes ?? 0,
        now: ports.clock.now(),
      })
    : "refresh";
  if (decision === "keep") {
    const moved = await ports.desktops.transition(desktop, "REFRESHING", "AVAILABLE");
    return moved ? "kept as it was (refresh policy)" : "skipped: desktop moved";
  }
  if (decision === "replace") return replaceDesktop(ports, desktop);
  // Discarding the delta is what makes the next user's desktop pristine (invariant 2); on a
  // recompose the new disk is on the pool's new version.
  await checkpoint("refresh:before-disk", desktopRef(desktop));
  await makeDisk(ports, desktop, version);
  await checkpoint("refresh:before-available", desktopRef(desktop));
  const moved = await ports.desktops.transition(desktop, "REFRESHING", "AVAILABLE", {
    imageVersion: version.version,
    pristineAt: ports.clock.now().toISOString(),
  });
  await releaseOldReplica(ports, desktop, version.version);
  return moved
    ? `${decision === "recompose" ? "recomposed" : "refreshed"}`
    : "skipped: desktop moved while refreshing";
}

/** A quarantined desktop is replaced by a new one in the same slot (the reconciler asks). */
async function replaceErrored(ports: WorkerPorts, job: Extract<CloneJob, { kind: "replace-desktop" }>) {
  const desktop = await ports.desktops.get(job.tenantId, job.poolId, job.desktopId);
  if (desktop?.state !== "ERROR") return `skipped: desktop is ${desktop?.state ?? "gone"}`;
  return replaceDesktop(ports, desktop);
}

/**
 * The desktop is destroyed and a new one provisioned in its place, keeping its slot and its
 * reservation (refreshPolicy `delete`, and quarantined desktops).
 */
async function replaceDesktop(ports: WorkerPorts, desktop: Desktop) {
  if (!(await ports.desktops.transition(desktop, desktop.state, "DELETING")))
    return `skipped: desktop moved while ${desktop.state.toLowerCase()}`;
  await ports.storage.deleteDesktopDisk(desktop);
  const {
    sessionId: _s,
    userId: _u,
    sessionStartedAt: _t,
    lastSessionId: _l,
    pristineAt: _p,
    error: _e,
    ...rest
  } = desktop;
  const fresh: Desktop = {
    ...rest,
    desktopId: newId("dsk"),
    state: "PROVISIONING",
    updatedAt: ports.clock.now().toISOString(),
  };
  // A redelivery finds the old desktop gone and stops here; the reconciler re-sends provisioning.
  if (!(await ports.desktops.replace(desktop, fresh))) return "skipped: already replaced";
  await ports.jobs.send([{ kind: "provision-desktop", ...desktopRef(fresh) }]);
  return `replaced by ${fresh.desktopId}`;
}

async function recomposeDesktop(
  ports: WorkerPorts,
  job: Extract<CloneJob, { kind: "recompose-desktop" }>,
  settings: WorkerSettings,
) {
  const desktop = await ports.desktops.get(job.tenantId, job.poolId, job.desktopId);
  if (desktop?.state !== "RECOMPOSING") return `skipped: desktop is ${desktop?.state ?? "gone"}`;
  const { datastoreId, desktopId } = desktop;
  const slots = settings.recomposeSlotsPerDatastore;
  if (
    !(await ports.datastores.acquireRecomposeSlot(datastoreId, desktopId, slots, settings.recomposeLeaseMs))
  ) {
    // Every slot of the datastore is busy: come back later without using up a delivery attempt.
    await ports.jobs.send([job], { delaySeconds: 1 });
    return "deferred: datastore recompose slots busy";
  }
  try {
    const { version } = await targetVersion(ports, desktop);
    try {
      await makeDisk(ports, desktop, version);
    } catch (err) {
      // One desktop's failure must not stop the pool's recompose: quarantine it, go on.
      await ports.desktops.transition(desktop, "RECOMPOSING", "ERROR", { error: (err as Error).message });
      return `failed: ${(err as Error).message}`;
    }
    const moved = await ports.desktops.transition(desktop, "RECOMPOSING", "AVAILABLE", {
      imageVersion: version.version,
      pristineAt: ports.clock.now().toISOString(),
    });
    await releaseOldReplica(ports, desktop, version.version);
    return moved ? `recomposed onto v${version.version}` : "skipped: desktop moved while recomposing";
  } finally {
    await ports.datastores.releaseRecomposeSlot(datastoreId, desktopId, slots);
  }
}

/** A desktop that left a retired version may have been the last user of that version's replica. */
async function releaseOldReplica(ports: WorkerPorts, desktop: Desktop, newVersion: number) {
  if (desktop.imageVersion !== newVersion)
    await releaseUnusedReplicas(ports, desktop.tenantId, desktop.imageId, desktop.imageVersion);
}

async function deleteDesktop(ports: WorkerPorts, job: Extract<CloneJob, { kind: "delete-desktop" }>) {
  const desktop = await ports.desktops.get(job.tenantId, job.poolId, job.desktopId);
  if (desktop && desktop.state !== "DELETING") return `skipped: desktop is ${desktop.state}`;
  if (desktop) {
    await ports.storage.deleteDesktopDisk(desktop);
    await ports.desktops.remove(desktop);
    await releaseUnusedReplicas(ports, desktop.tenantId, desktop.imageId, desktop.imageVersion);
  }
  const pool = await ports.pools.get(job.tenantId, job.poolId);
  if (pool?.state === "DELETING" && (await ports.desktops.list(job.tenantId, job.poolId)).length === 0) {
    await ports.pools.remove(job.tenantId, job.poolId);
  }
  return "deleted";
}
