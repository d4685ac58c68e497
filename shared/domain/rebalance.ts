import type { CloneJob } from "../messages/clone-job.ts";
import type { Ports } from "../ports/index.ts";
import { desktopRef } from "./common.ts";
import { type DefaultDatastore, listDatastores, placeAndReserve, requireDatastore } from "./datastores.ts";
import { newId } from "./ids.ts";
import type { Desktop } from "./model.ts";
import { GiB, placeDesktops } from "./placement.ts";
import { countedCharge } from "./quotas.ts";

/**
 * Moves FREE desktops off a datastore whose provisioned share is above `thresholdPercent`: each
 * is deleted and a new desktop of its pool is provisioned where placement finds room. Busy
 * desktops are left alone; a desktop that is taken meanwhile is skipped.
 */
export async function rebalanceDatastore(
  ports: Pick<Ports, "datastores" | "desktops" | "pools" | "jobs" | "clock">,
  defaults: DefaultDatastore,
  datastoreId: string,
  input: { thresholdPercent?: number },
) {
  const threshold = input.thresholdPercent ?? 80;
  const ds = await requireDatastore(ports, defaults, datastoreId);
  const limit = (threshold / 100) * ds.capacityGiB * GiB * ds.overcommit;
  let excess = ds.provisionedBytes - limit;
  const moved: { from: string; to: string }[] = [];
  for (const desktop of await ports.desktops.listFreeOnDatastore(datastoreId)) {
    if (excess <= 0) break;
    // A dedicated desktop belongs to its user, free or not.
    if (desktop.assignedUserId) continue;
    const pool = await ports.pools.get(desktop.tenantId, desktop.poolId);
    if (pool?.state !== "ACTIVE") continue;
    const others = pool.datastoreIds.filter((id) => id !== datastoreId);
    const bytes = desktop.provisionedBytes ?? 0;
    const rooms = (await listDatastores(ports, defaults)).filter((d) => others.includes(d.datastoreId));
    if (!placeDesktops(rooms, 1, bytes).ok) continue;
    if (!(await ports.desktops.transition(desktop, "AVAILABLE", "DELETING"))) continue;
    const now = ports.clock.now().toISOString();
    let fresh: Desktop | undefined;
    await placeAndReserve(ports, defaults, others, 1, bytes, (placement, reservations) => {
      const { assignedUserId: _a, pristineAt: _p, ...rest } = desktop;
      fresh = {
        ...rest,
        desktopId: newId("dsk"),
        state: "PROVISIONING",
        datastoreId: placement.datastoreIds[0] as string,
        createdAt: now,
        updatedAt: now,
      };
      // The operator's move: counted against the tenant (its old desktop's removal gives it back), never refused.
      return ports.pools.grow(pool, pool.size, [fresh], reservations, countedCharge(pool.tenantId, 1, bytes));
    });
    const target = fresh as unknown as Desktop;
    const jobs: CloneJob[] = [
      { kind: "delete-desktop", ...desktopRef(desktop) },
      { kind: "provision-desktop", ...desktopRef(target) },
    ];
    await ports.jobs.send(jobs);
    moved.push({ from: desktop.desktopId, to: target.desktopId });
    excess -= bytes;
  }
  return { datastoreId, thresholdPercent: threshold, moved, remainingExcessBytes: Math.max(0, excess) };
}
