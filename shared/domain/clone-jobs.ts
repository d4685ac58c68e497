import type { CloneJob } from "../messages/clone-job.ts";
import type { Ports } from "../ports.ts";
import { DomainError, RetryLater } from "./errors.ts";
import { replicateConfig } from "./replication.ts";

type WorkerPorts = Pick<
  Ports,
  "images" | "pools" | "desktops" | "storage" | "clock" | "peer" | "replication"
>;

/**
 * The clone worker's one entry point. Every branch re-reads state and is safe to run twice:
 * SQS delivers at least once and a worker may die at any line.
 */
export async function runCloneJob(ports: WorkerPorts, job: CloneJob): Promise<string> {
  switch (job.kind) {
    case "import-image-version":
      return importVersion(ports, job);
    case "provision-desktop":
      return provisionDesktop(ports, job);
    case "refresh-desktop":
      return refreshDesktop(ports, job);
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

async function provisionDesktop(ports: WorkerPorts, job: Extract<CloneJob, { kind: "provision-desktop" }>) {
  const desktop = await ports.desktops.get(job.tenantId, job.poolId, job.desktopId);
  if (desktop?.state !== "PROVISIONING") return `skipped: desktop is ${desktop?.state ?? "gone"}`;
  const version = await ports.images.getVersion(desktop.tenantId, desktop.imageId, desktop.imageVersion);
  if (version?.state !== "READY")
    throw new RetryLater(`image version ${desktop.imageId}@${desktop.imageVersion} not READY`);
  await ports.storage.ensureReplica(version, desktop.datastoreId);
  await ports.storage.createLinkedClone(desktop);
  const moved = await ports.desktops.transition(desktop, "PROVISIONING", "AVAILABLE");
  return moved ? "provisioned" : "skipped: desktop moved while provisioning";
}

async function refreshDesktop(ports: WorkerPorts, job: Extract<CloneJob, { kind: "refresh-desktop" }>) {
  const desktop = await ports.desktops.get(job.tenantId, job.poolId, job.desktopId);
  if (desktop?.state !== "REFRESHING" || desktop.lastSessionId !== job.sessionId) {
    return `skipped: desktop is ${desktop?.state ?? "gone"}`;
  }
  // Discarding the delta is what makes the next user's desktop pristine (invariant 2).
  await ports.storage.createLinkedClone(desktop);
  const moved = await ports.desktops.transition(desktop, "REFRESHING", "AVAILABLE");
  return moved ? "refreshed" : "skipped: desktop moved while refreshing";
}

async function deleteDesktop(ports: WorkerPorts, job: Extract<CloneJob, { kind: "delete-desktop" }>) {
  const desktop = await ports.desktops.get(job.tenantId, job.poolId, job.desktopId);
  if (desktop && desktop.state !== "DELETING") return `skipped: desktop is ${desktop.state}`;
  if (desktop) {
    await ports.storage.deleteDesktopDisk(desktop);
    await ports.desktops.remove(desktop);
  }
  const pool = await ports.pools.get(job.tenantId, job.poolId);
  if (pool?.state === "DELETING" && (await ports.desktops.list(job.tenantId, job.poolId)).length === 0) {
    await ports.pools.remove(job.tenantId, job.poolId);
  }
  return "deleted";
}
