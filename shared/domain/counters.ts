/**
 * The recount of datastore reservations. A datastore's usage counter is the sum of the bytes its
 * desktops reserved; writes keep it so (a reservation goes with its pool's write, a release with
 * its desktop's removal), but a worker that dies between a reservation and the desktops it was for
 * leaks it. The recount adds up every pool's desktops (index and partition queries, no scan) and
 * puts a counter right only when it finds the same difference twice, a stale period apart, with
 * the counter unchanged meanwhile: a pool being created at the moment of a count never looks leaked.
 */
import { logger } from "../logger.ts";
import type { Ports } from "../ports/index.ts";
import { recordPoolGauges } from "./metrics.ts";

type CounterPorts = Pick<Ports, "pools" | "desktops" | "datastores" | "metrics">;

export async function recountReservations(
  ports: CounterPorts,
  at: Date,
  confirmAfterMs: number,
  /** Datastores known from configuration (the default one), registered or not. */
  configured: string[],
): Promise<{ datastoreId: string; from: number; to: number }[]> {
  const usage = async () => {
    const byId = new Map((await ports.datastores.list()).map((d) => [d.datastoreId, d.provisionedBytes]));
    for (const id of configured) if (!byId.has(id)) byId.set(id, await ports.datastores.provisionedBytes(id));
    return byId;
  };
  const before = await usage();
  const counted = new Map<string, number>();
  for (const pool of await ports.pools.listAll()) {
    const desktops = await ports.desktops.list(pool.tenantId, pool.poolId);
    // Every pool's desktops read here anyway: its gauges too (a self-sizing one's sizer keeps them more often).
    recordPoolGauges(ports, pool, desktops);
    for (const d of desktops)
      counted.set(d.datastoreId, (counted.get(d.datastoreId) ?? 0) + (d.provisionedBytes ?? 0));
  }
  const after = await usage();
  const fixed = [];
  for (const [datastoreId, seen] of before) {
    // Something was reserved or released while counting: this count says nothing.
    if (after.get(datastoreId) !== seen) continue;
    const to = counted.get(datastoreId) ?? 0;
    if ((await ports.datastores.recount(datastoreId, seen, to, at, confirmAfterMs)) !== "fixed") continue;
    logger.info("reconciler repair", { repair: "reservation-counter", datastoreId, from: seen, to });
    fixed.push({ datastoreId, from: seen, to });
  }
  return fixed;
}
