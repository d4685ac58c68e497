/** Pure placement of desktops on datastores (no I/O): unit-tested in test/unit/placement.test.ts. */

export const GiB = 1024 ** 3;

export interface DatastoreRoom {
  datastoreId: string;
  capacityGiB: number;
  overcommit: number;
  provisionedBytes: number;
}

/** What a datastore may still promise: capacity times overcommit, less what desktops reserved. */
export function effectiveFreeBytes(ds: DatastoreRoom): number {
  return Math.floor(ds.capacityGiB * GiB * ds.overcommit) - ds.provisionedBytes;
}

export type Placement =
  | { ok: true; datastoreIds: string[]; bytesByDatastore: Record<string, number> }
  | { ok: false; shortfallBytes: number; unplaced: number };

/**
 * Puts each new desktop on the datastore with the most effective capacity free at that moment,
 * so datastores of different sizes fill in proportion to their room. Ties go to the lower id so
 * the outcome is deterministic.
 */
export function placeDesktops(datastores: DatastoreRoom[], count: number, bytesEach: number): Placement {
  const free = new Map(datastores.map((d) => [d.datastoreId, effectiveFreeBytes(d)]));
  const ids = [...free.keys()].sort();
  const placed: string[] = [];
  const bytesByDatastore: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    let best: string | undefined;
    for (const id of ids) {
      const room = free.get(id) ?? 0;
      if (room >= bytesEach && (best === undefined || room > (free.get(best) ?? 0))) best = id;
    }
    if (best === undefined) {
      const unplaced = count - i;
      return { ok: false, unplaced, shortfallBytes: shortfall(free, unplaced, bytesEach) };
    }
    placed.push(best);
    free.set(best, (free.get(best) ?? 0) - bytesEach);
    bytesByDatastore[best] = (bytesByDatastore[best] ?? 0) + bytesEach;
  }
  return { ok: true, datastoreIds: placed, bytesByDatastore };
}

/** Bytes of extra room needed for the rest to fit, counting leftovers too small for one desktop. */
function shortfall(free: Map<string, number>, unplaced: number, bytesEach: number): number {
  const leftover = [...free.values()].reduce((sum, room) => sum + Math.max(0, room), 0);
  return Math.max(bytesEach, unplaced * bytesEach - leftover);
}

/** Share of a datastore's effective capacity that is provisioned, in percent. */
export function provisionedPercent(ds: DatastoreRoom): number {
  const capacity = ds.capacityGiB * GiB * ds.overcommit;
  return capacity > 0 ? (ds.provisionedBytes / capacity) * 100 : 100;
}
