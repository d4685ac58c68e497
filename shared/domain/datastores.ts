import type { Ports, Reservation } from "../ports/index.ts";
import type { DiskJobCaps, DiskJobSettings } from "./disk-jobs.ts";
import { DomainError, invalid, notFound } from "./errors.ts";
import type { Datastore, DatastoreUsage } from "./model.ts";
import { effectiveFreeBytes, GiB, type Placement, placeDesktops, provisionedPercent } from "./placement.ts";

/** The region's own local datastore, known from configuration even before anyone registers it. */
export type DefaultDatastore = Omit<Datastore, "createdAt">;

export async function registerDatastore(
  ports: Pick<Ports, "datastores" | "clock">,
  input: Omit<Datastore, "createdAt">,
): Promise<Datastore> {
  const existing = await ports.datastores.get(input.datastoreId);
  const datastore: Datastore = {
    ...input,
    createdAt: existing?.createdAt ?? ports.clock.now().toISOString(),
  };
  await ports.datastores.put(datastore);
  return datastore;
}

/** Every datastore of the region with its reserved bytes: the registered ones plus the default. */
export async function listDatastores(
  ports: Pick<Ports, "datastores">,
  defaults: DefaultDatastore,
): Promise<(DatastoreUsage & { effectiveFreeBytes: number; provisionedPercent: number })[]> {
  const registered = await ports.datastores.list();
  const all = registered.some((d) => d.datastoreId === defaults.datastoreId)
    ? registered
    : [
        {
          ...defaults,
          createdAt: "",
          provisionedBytes: await ports.datastores.provisionedBytes(defaults.datastoreId),
        },
        ...registered,
      ];
  return all.map((d) => ({
    ...d,
    effectiveFreeBytes: effectiveFreeBytes(d),
    provisionedPercent: provisionedPercent(d),
  }));
}

/** GET /v1/admin/datastores: every datastore with its usage and the clone-storm caps in force. */
export async function describeDatastores(
  ports: Pick<Ports, "datastores">,
  defaults: DefaultDatastore,
  settings: Pick<DiskJobSettings, "datastoreCaps" | "hostCaps">,
) {
  return (await listDatastores(ports, defaults)).map((d) => ({
    ...d,
    caps: {
      provisioning: d.provisioningCap ?? settings.datastoreCaps.provisioning,
      maintenance: d.maintenanceCap ?? settings.datastoreCaps.maintenance,
    } satisfies DiskJobCaps,
    ...(d.hostId ? { hostCaps: settings.hostCaps } : {}),
  }));
}

export const insufficientCapacity = (unplaced: number, shortfallBytes: number) =>
  new DomainError(
    "insufficientCapacity",
    `not enough datastore capacity: ${unplaced} desktop(s) do not fit; ${(shortfallBytes / GiB).toFixed(2)} GiB more effective capacity is needed`,
  );

/**
 * Places `count` desktops of `bytesEach` on the allowed datastores and hands the plan to `commit`,
 * which writes it together with its reservations. A lost race with another reservation re-reads
 * and plans again; a plan that cannot fit answers insufficient-capacity, having written nothing.
 */
export async function placeAndReserve(
  ports: Pick<Ports, "datastores">,
  defaults: DefaultDatastore,
  allowed: string[],
  count: number,
  bytesEach: number,
  commit: (placement: Extract<Placement, { ok: true }>, reservations: Reservation[]) => Promise<boolean>,
): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const rooms = (await listDatastores(ports, defaults)).filter((d) => allowed.includes(d.datastoreId));
    const placement = placeDesktops(rooms, count, bytesEach);
    if (!placement.ok) throw insufficientCapacity(placement.unplaced, placement.shortfallBytes);
    const reservations = Object.entries(placement.bytesByDatastore).map(([datastoreId, bytes]) => {
      const ds = rooms.find((d) => d.datastoreId === datastoreId) as DatastoreUsage;
      return { datastoreId, bytes, limitBytes: Math.floor(ds.capacityGiB * GiB * ds.overcommit) };
    });
    if (await commit(placement, reservations)) return;
  }
  throw new DomainError("capacityContention", "datastore capacity kept changing under this request; retry");
}

/** The datastores a pool may use: the named ones (each must exist) or all of the region's. */
export async function allowedDatastores(
  ports: Pick<Ports, "datastores">,
  defaults: DefaultDatastore,
  requested: string[] | undefined,
): Promise<string[]> {
  const all = (await listDatastores(ports, defaults)).map((d) => d.datastoreId);
  if (!requested || requested.length === 0) return all;
  for (const [n, id] of requested.entries())
    if (!all.includes(id)) throw invalid(`datastoreIds.${n}`, `datastore ${id} is not registered`);
  return [...new Set(requested)];
}

export async function requireDatastore(
  ports: Pick<Ports, "datastores">,
  defaults: DefaultDatastore,
  id: string,
) {
  const found = (await listDatastores(ports, defaults)).find((d) => d.datastoreId === id);
  if (!found) throw notFound("datastore", id);
  return found;
}

/**
 * The datastores desktops can be made on now: one whose host runs its desktops' VMs needs that
 * host up and able (its hypervisor present). None left: a clear 409 naming why, not desktops
 * that never boot.
 */
export async function datastoresThatCanRun(
  ports: Pick<Ports, "datastores" | "hosts">,
  defaults: DefaultDatastore,
  datastoreIds: string[],
): Promise<string[]> {
  const all = await listDatastores(ports, defaults);
  const usable: string[] = [];
  const reasons: string[] = [];
  for (const id of datastoreIds) {
    const hostId = all.find((d) => d.datastoreId === id)?.hostId;
    const host = hostId ? await ports.hosts.get(hostId) : undefined;
    const why = !hostId
      ? undefined
      : !host
        ? `host ${hostId} of datastore ${id} has not reported yet`
        : host.problem
          ? `host ${hostId} of datastore ${id} cannot run desktops: ${host.problem}`
          : host.state === "LATE"
            ? `host ${hostId} of datastore ${id} is not answering (last heard from at ${host.lastHeartbeatAt})`
            : undefined;
    if (why) reasons.push(why);
    else usable.push(id);
  }
  if (usable.length === 0 && reasons.length > 0) throw new DomainError("hostUnavailable", reasons.join("; "));
  return usable;
}
