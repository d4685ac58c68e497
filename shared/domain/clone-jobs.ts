import type { CloneJob, PowerJob } from "../messages/clone-job.ts";
import type { Ports } from "../ports/index.ts";
import type { DefaultDatastore } from "./datastores.ts";
import {
  connectSession,
  plugUserData,
  powerOffFree,
  startDesktop,
  takeScreenshot,
  warnSession,
} from "./desktop-vms.ts";
import {
  type DiskJobPorts,
  type DiskJobSettings,
  deleteDesktop,
  provisionDesktops,
  recomposeDesktop,
  refreshDesktop,
  replaceErrored,
  vmPorts,
} from "./disk-jobs.ts";
import { DomainError, RetryLater } from "./errors.ts";
import { serveLogons } from "./logon-queue.ts";
import type { QuotaLimits } from "./model.ts";
import { sizePool } from "./pool-sizer.ts";
import { defaultQuotas } from "./quotas.ts";
import { ensureReplica, readyVersion } from "./replica-copies.ts";
import { replicateConfig } from "./replication-config.ts";
import { checkSessionTimeout, scheduleSessionTimeouts } from "./session-timeouts.ts";
import { sweepDatastore } from "./sweep.ts";

type WorkerPorts = DiskJobPorts &
  Pick<Ports, "peer" | "replication" | "logonQueue" | "sessions" | "userDataJobs" | "metrics" | "quotas">;

export interface RegionDefaults {
  defaultDatastore: DefaultDatastore | undefined;
  quotas: QuotaLimits;
}

export interface WorkerSettings extends DiskJobSettings {
  /** A job that fails this many deliveries gives up visibly: the desktop goes to ERROR, the version FAILED. */
  quarantineAfterAttempts: number;
}

export const defaultWorkerSettings: WorkerSettings = {
  // As the established brokers cap them per storage target.
  datastoreCaps: { provisioning: 20, maintenance: 12 },
  hostCaps: { provisioning: 20, maintenance: 12 },
  slotLeaseMs: 10 * 60_000,
  replicaCopyLeaseMs: 30_000,
  replicaWaitMs: 60_000,
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
  /** Where a pool's growth is placed, and within which quotas. */
  region: RegionDefaults = { defaultDatastore: undefined, quotas: defaultQuotas },
): Promise<string> {
  const lastAttempt = attempt >= settings.quarantineAfterAttempts;
  switch (job.kind) {
    case "size-pool":
      if (!region.defaultDatastore) throw new Error("size-pool needs the region's default datastore");
      return sizePool(ports, job.tenantId, job.poolId, region.defaultDatastore, region.quotas);
    case "serve-logons":
      return serveLogons(ports, job.tenantId, job.poolId);
    case "import-image-version":
      return importVersion(ports, job, lastAttempt);
    case "prepare-replica":
      return prepareReplica(ports, job, settings);
    case "provision-desktop":
    case "provision-desktops":
      return provisionDesktops(ports, job, settings, lastAttempt);
    case "replace-desktop":
      return replaceErrored(ports, job);
    case "refresh-desktop":
      return refreshDesktop(ports, job, settings);
    case "recompose-desktop":
      return recomposeDesktop(ports, job, settings);
    case "delete-desktop":
      return deleteDesktop(ports, job);
    case "sweep-datastore":
      return sweepDatastore(ports, job);
    case "check-session-timeout":
      return checkSessionTimeout(ports, job);
    case "schedule-session-timeouts":
      return scheduleSessionTimeouts(ports, job);
    case "start-desktop":
    case "stop-desktop":
    case "connect-session":
    case "plug-user-data":
    case "screenshot":
    case "warn-session":
      return runPowerJob(ports, job);
  }
}

/**
 * Power jobs act on a VM: only a host agent runs them (they are routed to its queue). One that
 * reaches another worker was misrouted: it fails, to be retried and then seen in the DLQ, rather
 * than end as a success the user would wait on for nothing.
 */
async function runPowerJob(ports: WorkerPorts, job: PowerJob): Promise<string> {
  const vms = vmPorts(ports);
  if (!vms)
    throw new Error(`${job.kind} of desktop ${job.desktopId} reached a worker that runs no VMs (misrouted)`);
  switch (job.kind) {
    case "start-desktop":
      return startDesktop(vms, job);
    case "stop-desktop":
      return powerOffFree(vms, job);
    case "connect-session":
      return connectSession(vms, job);
    case "plug-user-data":
      return plugUserData(vms, job);
    case "screenshot":
      return takeScreenshot(vms, job);
    case "warn-session":
      return warnSession(vms, job);
  }
}

/**
 * Publishing: the tenant's disk becomes the version's file in the image store. A source that is
 * not a usable disk will not get better on retry, nor will an import that kept failing: the
 * version becomes FAILED with a reason the tenant may read (the detail is in the worker's logs).
 */
async function importVersion(
  ports: WorkerPorts,
  job: Extract<CloneJob, { kind: "import-image-version" }>,
  lastAttempt: boolean,
) {
  const version = await ports.images.getVersion(job.tenantId, job.imageId, job.version);
  if (version?.state !== "PUBLISHING") return "skipped: version not publishing";
  const fail = async (reason: string) => {
    await ports.images.completeVersion(job.tenantId, job.imageId, job.version, {
      state: "FAILED",
      error: reason,
    });
    return `failed: ${reason}`;
  };
  try {
    const imported = await ports.storage.importImage(version);
    await ports.images.completeVersion(job.tenantId, job.imageId, job.version, {
      state: "READY",
      ...imported,
      readyAt: ports.clock.now().toISOString(),
    });
  } catch (err) {
    if (err instanceof DomainError) return fail(err.message);
    if (lastAttempt && !(err instanceof RetryLater))
      return `${await fail("the import failed on every try; the operator's logs name the cause")} (${(err as Error).message})`;
    throw err;
  }
  // Each published version goes to the DR region once (with the tenant's configuration).
  await replicateConfig(ports, job.tenantId);
  return "imported";
}

async function prepareReplica(
  ports: WorkerPorts,
  job: Extract<CloneJob, { kind: "prepare-replica" }>,
  settings: WorkerSettings,
) {
  const version = await readyVersion(ports, job.tenantId, job.imageId, job.version);
  await ensureReplica(ports, version, job.datastoreId, settings, true);
  return "replica ready";
}
