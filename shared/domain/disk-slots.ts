/**
 * Clone-storm caps: a disk job takes a slot (a lease in the table) of its datastore's cap for its
 * kind, and of its host's, before it writes; a job beyond them waits instead of failing on storage
 * contention.
 */
import { randomUUID } from "node:crypto";
import type { Ports } from "../ports/index.ts";
import type { Datastore, Desktop } from "./model.ts";

/** How many disk jobs of each kind may write at once (provisioning; refresh and recompose). */
export interface DiskJobCaps {
  provisioning: number;
  maintenance: number;
}

export interface SlotSettings {
  datastoreCaps: DiskJobCaps;
  hostCaps: DiskJobCaps;
  slotLeaseMs: number;
}

export type SlotKind = keyof DiskJobCaps;

/**
 * A datastore's record (its caps, its host), remembered by a worker for a little while: a storm's
 * every disk job needs it, and an operator's change of the caps applies within that while.
 */
const datastores = new Map<string, { record: Datastore | undefined; readAt: number }>();
const datastoreTtlMs = 10_000;

async function datastoreOf(ports: Pick<Ports, "datastores">, datastoreId: string) {
  const known = datastores.get(datastoreId);
  if (known && Date.now() - known.readAt < datastoreTtlMs) return known.record;
  const record = await ports.datastores.get(datastoreId);
  if (datastores.size > 1000) datastores.clear();
  datastores.set(datastoreId, { record, readAt: Date.now() });
  return record;
}

/**
 * Takes a slot of the datastore's cap for this kind of disk job, and of its host's; answers how to
 * give them back, or undefined (holding none) when a cap is reached.
 */
export async function takeSlots(
  ports: Pick<Ports, "datastores">,
  desktop: Desktop,
  kind: SlotKind,
  settings: SlotSettings,
): Promise<(() => Promise<void>) | undefined> {
  const datastore = await datastoreOf(ports, desktop.datastoreId);
  const own = kind === "provisioning" ? datastore?.provisioningCap : datastore?.maintenanceCap;
  const caps = [{ scope: `${desktop.datastoreId}#${kind}`, slots: own ?? settings.datastoreCaps[kind] }];
  if (datastore?.hostId)
    caps.push({ scope: `host:${datastore.hostId}#${kind}`, slots: settings.hostCaps[kind] });
  // Each delivery holds its own slots: a duplicate never shares (and then frees) another's.
  const holder = `${desktop.desktopId}#${randomUUID()}`;
  const held: { scope: string; slot: number }[] = [];
  const release = async () => {
    await Promise.all(held.map((h) => ports.datastores.releaseSlot(h.scope, h.slot, holder)));
  };
  for (const cap of caps) {
    const slot = await ports.datastores.acquireSlot(cap.scope, holder, cap.slots, settings.slotLeaseMs);
    if (slot === undefined) {
      await release();
      return undefined;
    }
    held.push({ scope: cap.scope, slot });
  }
  return release;
}
