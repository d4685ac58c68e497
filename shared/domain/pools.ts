import type { Ports } from "../ports.ts";
import { type DesktopState, emptyStateCounts } from "./desktop-state.ts";
import { conflict, notFound } from "./errors.ts";
import { newId } from "./ids.ts";
import type { Desktop, Pool } from "./model.ts";
import { replicateConfig } from "./replication.ts";
import { commitLater } from "./sessions.ts";

export interface CreatePoolInput {
  name: string;
  imageId: string;
  imageVersion?: number;
  size: number;
}

export async function createPool(
  ports: Pick<Ports, "images" | "pools" | "jobs" | "clock" | "peer" | "replication">,
  tenantId: string,
  input: CreatePoolInput,
  datastoreId: string,
): Promise<Pool> {
  const image = await ports.images.getImage(tenantId, input.imageId);
  if (!image) throw notFound("image", input.imageId);
  const versionNumber = input.imageVersion ?? image.latestVersion;
  const version =
    versionNumber > 0 ? await ports.images.getVersion(tenantId, image.imageId, versionNumber) : undefined;
  if (!version) throw notFound("image version", `${image.imageId}@${versionNumber}`);
  if (version.state !== "READY") {
    throw conflict(
      "image-version-not-ready",
      `image ${image.imageId} version ${versionNumber} is ${version.state}, not READY`,
    );
  }
  const now = ports.clock.now().toISOString();
  const pool: Pool = {
    tenantId,
    poolId: newId("pool"),
    name: input.name,
    imageId: image.imageId,
    imageVersion: versionNumber,
    assignment: "floating",
    cloneType: "linked",
    refreshPolicy: "refresh",
    size: input.size,
    datastoreId,
    state: "ACTIVE",
    createdAt: now,
  };
  const desktops: Desktop[] = Array.from({ length: input.size }, () => ({
    tenantId,
    poolId: pool.poolId,
    desktopId: newId("dsk"),
    state: "PROVISIONING",
    datastoreId,
    imageId: pool.imageId,
    imageVersion: pool.imageVersion,
    updatedAt: now,
  }));
  await ports.pools.create(pool, desktops);
  await ports.jobs.send(desktops.map((d) => ({ kind: "provision-desktop", ...desktopRef(d) })));
  await replicateConfig(ports, tenantId);
  return pool;
}

export function desktopRef(d: Pick<Desktop, "tenantId" | "poolId" | "desktopId">) {
  return { tenantId: d.tenantId, poolId: d.poolId, desktopId: d.desktopId };
}

export async function requirePool(
  ports: Pick<Ports, "pools">,
  tenantId: string,
  poolId: string,
): Promise<Pool> {
  const pool = await ports.pools.get(tenantId, poolId);
  if (!pool) throw notFound("pool", poolId);
  return pool;
}

export function countByState(desktops: Pick<Desktop, "state">[]): Record<DesktopState, number> {
  const counts = emptyStateCounts();
  for (const d of desktops) counts[d.state] += 1;
  return counts;
}

export async function describePool(
  ports: Pick<Ports, "pools" | "desktops">,
  tenantId: string,
  poolId: string,
) {
  const pool = await requirePool(ports, tenantId, poolId);
  const desktops = await ports.desktops.list(tenantId, poolId);
  return { ...pool, desktopCounts: countByState(desktops) };
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
