import { type CloneJob, provisionBatchMax } from "../messages/clone-job.ts";
import type { Ports, Reservation, TenantCharge } from "../ports/index.ts";
import { assertActive, commitLater, desktopRef, requirePool } from "./common.ts";
import {
  allowedDatastores,
  type DefaultDatastore,
  datastoresThatCanRun,
  placeAndReserve,
} from "./datastores.ts";
import { type DesktopState, emptyStateCounts } from "./desktop-state.ts";
import { DomainError, notFound } from "./errors.ts";
import { newId } from "./ids.ts";
import type {
  Assignment,
  CloneType,
  Desktop,
  ImageVersion,
  Pool,
  PoolSizingSettings,
  QuotaLimits,
  RefreshPolicy,
  SessionTimeouts,
} from "./model.ts";
import { initialSize } from "./pool-sizing.ts";
import { countedCharge, limitedCharge } from "./quotas.ts";
import { recomposeProgress } from "./recompose-progress.ts";
import { replicateConfig, replicateDeletions } from "./replication-config.ts";

export interface CreatePoolInput extends PoolSizingSettings {
  name: string;
  imageId: string;
  imageVersion?: number;
  /** A fixed pool's size; a self-sizing one gives maxSize (and minSize, spare) instead. */
  size?: number;
  assignment?: Assignment;
  cloneType?: CloneType;
  refreshPolicy?: RefreshPolicy;
  refreshWhenDeltaExceedsPercent?: number;
  refreshEveryDays?: number;
  datastoreIds?: string[];
  sessionTimeouts?: SessionTimeouts;
}

/**
 * A version new desktops may be made from: READY and not retired. Without a number, the newest
 * such version (a later one that failed or still publishes does not block the image).
 */
export async function usableVersion(
  ports: Pick<Ports, "images">,
  tenantId: string,
  imageId: string,
  versionNumber: number | undefined,
): Promise<ImageVersion> {
  const image = await ports.images.getImage(tenantId, imageId);
  if (!image) throw notFound("image", imageId);
  if (versionNumber === undefined) {
    const usable = (await ports.images.listVersions(tenantId, imageId))
      .filter((v) => v.state === "READY" && !v.retiredAt)
      .sort((a, b) => b.version - a.version)[0];
    if (usable) return usable;
  }
  const n = versionNumber ?? image.latestVersion;
  const version = n > 0 ? await ports.images.getVersion(tenantId, imageId, n) : undefined;
  if (!version) throw notFound("image version", `${imageId}@${n}`);
  if (version.state !== "READY")
    throw new DomainError(
      "imageVersionNotReady",
      `image ${imageId} version ${n} is ${version.state}, not READY`,
    );
  if (version.retiredAt)
    throw new DomainError(
      "imageVersionRetired",
      `image ${imageId} version ${n} is retired: no new desktops from it`,
    );
  return version;
}

/** What a desktop reserves on its datastore: its disk's virtual size. */
const bytesOf = (version: ImageVersion) => version.virtualSizeBytes ?? 0;

function newDesktop(
  pool: Pool,
  datastoreId: string,
  provisionedBytes: number,
  now: string,
  slot: number,
): Desktop {
  return {
    tenantId: pool.tenantId,
    poolId: pool.poolId,
    desktopId: newId("dsk"),
    slot,
    state: "PROVISIONING",
    datastoreId,
    imageId: pool.imageId,
    imageVersion: pool.imageVersion,
    cloneType: pool.cloneType,
    provisionedBytes,
    createdAt: now,
    updatedAt: now,
  };
}

/** Linked clones read through a replica: have it made once per datastore before any desktop asks. */
function replicaJobs(pool: Pool, datastoreIds: Iterable<string>): CloneJob[] {
  if (pool.cloneType !== "linked") return [];
  return [...new Set(datastoreIds)].map((datastoreId) => ({
    kind: "prepare-replica",
    tenantId: pool.tenantId,
    imageId: pool.imageId,
    version: pool.imageVersion,
    datastoreId,
  }));
}

/**
 * With `quotaDefaults` (the tenant's own request), the pool must fit the tenant's quotas; without
 * (a drill), its desktops are counted but not limited.
 */
/** A self-sizing pool's settings as stored: bounds and spare always, the rest when given. */
function selfSizing(input: PoolSizingSettings & { maxSize: number }): PoolSizingSettings {
  const given = Object.entries({
    poweredOnSpare: input.poweredOnSpare,
    idleSeconds: input.idleSeconds,
    ticketTimeoutSeconds: input.ticketTimeoutSeconds,
  }).filter(([, v]) => v !== undefined);
  return {
    minSize: input.minSize ?? 0,
    maxSize: input.maxSize,
    spare: input.spare ?? 0,
    ...Object.fromEntries(given),
  };
}

export async function createPool(
  ports: Pick<
    Ports,
    "images" | "pools" | "jobs" | "clock" | "datastores" | "peer" | "replication" | "hosts"
  > &
    Partial<Pick<Ports, "quotas">>,
  tenantId: string,
  input: CreatePoolInput,
  defaults: DefaultDatastore,
  quotaDefaults?: QuotaLimits,
): Promise<Pool> {
  const version = await usableVersion(ports, tenantId, input.imageId, input.imageVersion);
  const assignment = input.assignment ?? "floating";
  const now = ports.clock.now().toISOString();
  const pool: Pool = {
    tenantId,
    poolId: newId("pool"),
    name: input.name,
    imageId: input.imageId,
    imageVersion: version.version,
    assignment,
    cloneType: input.cloneType ?? "linked",
    // A dedicated user expects their desktop back as they left it.
    refreshPolicy: input.refreshPolicy ?? (assignment === "dedicated" ? "none" : "refresh"),
    ...(input.refreshWhenDeltaExceedsPercent !== undefined
      ? { refreshWhenDeltaExceedsPercent: input.refreshWhenDeltaExceedsPercent }
      : {}),
    ...(input.refreshEveryDays !== undefined ? { refreshEveryDays: input.refreshEveryDays } : {}),
    size:
      input.maxSize !== undefined
        ? initialSize({ minSize: input.minSize ?? 0, maxSize: input.maxSize, spare: input.spare ?? 0 })
        : (input.size ?? 1),
    ...(input.maxSize !== undefined ? selfSizing({ ...input, maxSize: input.maxSize }) : {}),
    ...(input.sessionTimeouts && Object.keys(input.sessionTimeouts).length > 0
      ? { sessionTimeouts: input.sessionTimeouts }
      : {}),
    datastoreIds: await allowedDatastores(ports, defaults, input.datastoreIds),
    state: "ACTIVE",
    createdAt: now,
  };
  await provisionPool(ports, pool, version, defaults, quotaDefaults);
  await replicateConfig(ports, tenantId);
  return pool;
}

/**
 * Places a new pool's desktops, stores pool and desktops with their capacity and their tenant's
 * charge, and sends the jobs. A failover's pools are counted, never refused by a quota.
 */
export function provisionPool(
  ports: Pick<Ports, "pools" | "jobs" | "clock" | "datastores" | "hosts"> & Partial<Pick<Ports, "quotas">>,
  pool: Pool,
  version: ImageVersion,
  defaults: DefaultDatastore,
  quotaDefaults?: QuotaLimits,
): Promise<Desktop[]> {
  return addDesktops(ports, pool, version, defaults, quotaDefaults, pool.size, 0, (desktops, r, charge) =>
    ports.pools.create(pool, desktops, r, charge),
  );
}

/**
 * Places `count` new desktops (slots from `firstSlot`), lets `store` write them with their
 * capacity reservations and their tenant's charge in one go, then sends their replica and
 * provisioning jobs. The quotas are checked before the datastores (a tenant at its quota hears so,
 * whatever the datastores hold), and again after a lost race: the charge may be what refused it.
 */
async function addDesktops(
  ports: Pick<Ports, "jobs" | "clock" | "datastores" | "hosts"> & Partial<Pick<Ports, "quotas">>,
  pool: Pool,
  version: ImageVersion,
  defaults: DefaultDatastore,
  quotaDefaults: QuotaLimits | undefined,
  count: number,
  firstSlot: number,
  store: (desktops: Desktop[], reservations: Reservation[], charge: TenantCharge) => Promise<boolean>,
): Promise<Desktop[]> {
  const now = ports.clock.now().toISOString();
  const quotas = ports.quotas;
  if (quotaDefaults && !quotas) throw new Error("quotas to enforce without a quota repository");
  const chargeNow = () =>
    quotas && quotaDefaults
      ? limitedCharge({ quotas }, quotaDefaults, pool.tenantId, count, bytesOf(version))
      : Promise.resolve(countedCharge(pool.tenantId, count, bytesOf(version)));
  let charge = await chargeNow();
  let attempts = 0;
  let desktops: Desktop[] = [];
  await placeAndReserve(
    ports,
    defaults,
    await datastoresThatCanRun(ports, defaults, pool.datastoreIds),
    count,
    bytesOf(version),
    async (placement, reservations) => {
      if (attempts++ > 0) charge = await chargeNow();
      desktops = placement.datastoreIds.map((ds, i) =>
        newDesktop(pool, ds, bytesOf(version), now, firstSlot + i),
      );
      return store(desktops, reservations, charge);
    },
  );
  await ports.jobs.send([
    ...replicaJobs(
      pool,
      desktops.map((d) => d.datastoreId),
    ),
    ...provisionJobs(pool, desktops),
  ]);
  return desktops;
}

/** A pool's new desktops as `provision-desktops` jobs: per datastore, a few desktops each. */
function provisionJobs(pool: Pool, desktops: Desktop[]): CloneJob[] {
  const jobs: CloneJob[] = [];
  for (const datastoreId of new Set(desktops.map((d) => d.datastoreId))) {
    const ids = desktops.filter((d) => d.datastoreId === datastoreId).map((d) => d.desktopId);
    for (let i = 0; i < ids.length; i += provisionBatchMax)
      jobs.push({
        kind: "provision-desktops",
        tenantId: pool.tenantId,
        poolId: pool.poolId,
        datastoreId,
        desktopIds: ids.slice(i, i + provisionBatchMax),
      });
  }
  return jobs;
}

/**
 * Grows a pool (placing, reserving and charging like a new one, within the tenant's quotas) or
 * shrinks it by deleting free desktops (their charge goes back as each one is deleted).
 */
export async function resizePool(
  ports: Pick<Ports, "images" | "pools" | "desktops" | "jobs" | "clock" | "datastores" | "hosts" | "quotas">,
  tenantId: string,
  poolId: string,
  size: number,
  defaults: DefaultDatastore,
  quotaDefaults: QuotaLimits,
): Promise<Pool> {
  const pool = await requirePool(ports, tenantId, poolId);
  assertActive(pool);
  if (size === pool.size) return pool;
  if (size < pool.size) {
    const free = (await ports.desktops.list(tenantId, poolId)).filter((d) => d.state === "AVAILABLE");
    return removeFreeDesktops(ports, pool, free.slice(0, pool.size - size));
  }
  const version = await usableVersion(ports, tenantId, pool.imageId, pool.imageVersion);
  const added = size - pool.size;
  await addDesktops(ports, pool, version, defaults, quotaDefaults, added, pool.size, (desktops, r, charge) =>
    ports.pools.grow(pool, size, desktops, r, charge),
  );
  return { ...pool, size };
}

/**
 * Removes these free desktops (those still free when taken) and shrinks the pool by as many; their
 * charge goes back as each one is deleted.
 */
export async function removeFreeDesktops(
  ports: Pick<Ports, "pools" | "desktops" | "jobs">,
  pool: Pool,
  candidates: Desktop[],
): Promise<Pool> {
  const gone: Desktop[] = [];
  for (const d of candidates) {
    if (d.state !== "AVAILABLE" && d.state !== "STOPPED") continue;
    if (await ports.desktops.transition(d, d.state, "DELETING")) gone.push(d);
  }
  const newSize = pool.size - gone.length;
  if (!(await ports.pools.grow(pool, newSize, [], [], countedCharge(pool.tenantId, 0, 0))))
    throw new DomainError("poolChanged", `pool ${pool.poolId} changed during the resize; retry`);
  await ports.jobs.send(gone.map((d) => ({ kind: "delete-desktop", ...desktopRef(d) })));
  return { ...pool, size: newSize };
}

export function countByState(desktops: Pick<Desktop, "state">[]): Record<DesktopState, number> {
  const counts = emptyStateCounts();
  for (const d of desktops) counts[d.state] += 1;
  return counts;
}

export function listPools(ports: Pick<Ports, "pools">, tenantId: string): Promise<Pool[]> {
  return ports.pools.list(tenantId);
}

export async function describePool(
  ports: Pick<Ports, "pools" | "desktops">,
  tenantId: string,
  poolId: string,
) {
  const pool = await requirePool(ports, tenantId, poolId);
  const desktops = await ports.desktops.list(tenantId, poolId);
  const { recompose, ...rest } = pool;
  return {
    ...rest,
    desktopCounts: countByState(desktops),
    ...(recompose ? { recompose: recomposeProgress(recompose, desktops) } : {}),
  };
}

export async function listPoolDesktops(
  ports: Pick<Ports, "pools" | "desktops" | "storage">,
  tenantId: string,
  poolId: string,
) {
  await requirePool(ports, tenantId, poolId);
  const desktops = await ports.desktops.list(tenantId, poolId);
  return Promise.all(desktops.map(async (d) => ({ ...d, deltaBytes: await ports.storage.deltaBytes(d) })));
}

/**
 * `DELETE /v1/pools/{poolId}`: drains the pool, and its standby in the peer region goes too. The
 * tombstone is recorded before the drain starts, so a pool that is going is never shipped again.
 * (Drills and failback drain their own pools with `deletePool`: those are no deletion to replicate.)
 */
export async function deletePoolEverywhere(
  ports: Pick<
    Ports,
    "pools" | "desktops" | "sessions" | "jobs" | "clock" | "userDataJobs" | "dr" | "peer" | "replication"
  >,
  tenantId: string,
  poolId: string,
): Promise<Pool> {
  await requirePool(ports, tenantId, poolId);
  await replicateDeletions(ports, tenantId, { pools: [poolId] });
  return deletePool(ports, tenantId, poolId);
}

/**
 * Drains a pool: active sessions are logged off, every desktop goes to DELETING and gets a delete
 * job; the clone worker removes the pool record after its last desktop.
 */
export async function deletePool(
  ports: Pick<Ports, "pools" | "desktops" | "sessions" | "jobs" | "clock" | "userDataJobs">,
  tenantId: string,
  poolId: string,
): Promise<Pool> {
  const pool = await requirePool(ports, tenantId, poolId);
  await ports.pools.markDeleting(tenantId, poolId);
  const desktops = await ports.desktops.list(tenantId, poolId);
  const toDelete: Desktop[] = [];
  for (const initial of desktops) {
    let desktop: Desktop | undefined = initial;
    // A desktop may move under us (a logon, a finished refresh): re-read and try again.
    for (let attempt = 0; desktop && desktop.state !== "DELETING" && attempt < 10; attempt++) {
      if (desktop.state === "ASSIGNED" && desktop.sessionId) {
        const session = await ports.sessions.get(tenantId, desktop.sessionId);
        if (session) await ports.sessions.end(session, ports.clock.now().toISOString(), "pool-delete");
        if (session) await commitLater(ports, session);
      } else if (await ports.desktops.transition(desktop, desktop.state, "DELETING")) {
        desktop = { ...desktop, state: "DELETING" };
        break;
      }
      desktop = await ports.desktops.get(tenantId, poolId, initial.desktopId);
    }
    if (desktop?.state === "DELETING") toDelete.push(desktop);
  }
  await ports.jobs.send(toDelete.map((d) => ({ kind: "delete-desktop", ...desktopRef(d) })));
  if (desktops.length === 0) await ports.pools.remove(tenantId, poolId);
  return { ...pool, state: "DELETING" };
}
