/** The sizer of a self-sizing pool (pool-sizing.ts decides), and changes to a pool's sizing. */
import type { Ports } from "../ports/index.ts";
import { assertActive, desktopRef, requirePool } from "./common.ts";
import type { DefaultDatastore } from "./datastores.ts";
import { DomainError, invalid, RetryLater } from "./errors.ts";
import { recordPoolGauges } from "./metrics.ts";
import type { Desktop, Pool, PoolSizingSettings, QuotaLimits } from "./model.ts";
import { decidePower, decideSizing, type SizingDecision, sizingOf } from "./pool-sizing.ts";
import { removeFreeDesktops, resizePool } from "./pools.ts";

type SizerPorts = Parameters<typeof resizePool>[0] & Pick<Ports, "logonQueue" | "metrics">;

/** Desktops added by one run at most; the next run adds more (so no run holds a huge write). */
const maxAddPerRun = 50;

/** The `size-pool` job: grows or shrinks the pool to what its users need now (pool-sizing.ts). */
export async function sizePool(
  ports: SizerPorts,
  tenantId: string,
  poolId: string,
  defaults: DefaultDatastore,
  quotaDefaults: QuotaLimits,
): Promise<string> {
  const pool = await ports.pools.get(tenantId, poolId);
  if (pool?.state !== "ACTIVE" || pool.maxSize === undefined) return "skipped: not a self-sizing pool";
  const [desktops, waiting] = await Promise.all([
    ports.desktops.list(tenantId, poolId),
    ports.logonQueue.waiting(tenantId, poolId),
  ]);
  recordPoolGauges(ports, pool, desktops);
  const decision = decideSizing(sizingOf(pool), pool.size, desktops, waiting, ports.clock.now().getTime());
  const power = await applyPower(ports, pool, desktops, waiting, defaults);
  try {
    return `${await applySizing(ports, pool, decision, defaults, quotaDefaults)}${power}`;
  } catch (err) {
    // Another resize (or sizer, or pool) changed the pool or the datastores first: size again.
    if (err instanceof DomainError && (err.problem === "poolChanged" || err.problem === "capacityContention"))
      throw new RetryLater(err.message);
    // The datastores or the tenant's quota hold no more: waiting tickets expire, logons get 503.
    if (
      err instanceof DomainError &&
      (err.problem === "insufficientCapacity" || err.problem === "quotaExceeded")
    )
      return `cannot grow: ${err.message}${power}`;
    throw err;
  }
}

async function applySizing(
  ports: SizerPorts,
  pool: Pool,
  decision: SizingDecision,
  defaults: DefaultDatastore,
  quotaDefaults: QuotaLimits,
): Promise<string> {
  const { tenantId, poolId } = pool;
  switch (decision.action) {
    case "add": {
      const add = Math.min(decision.count, maxAddPerRun);
      await resizePool(ports, tenantId, poolId, pool.size + add, defaults, quotaDefaults);
      if (add < decision.count) await ports.jobs.send([{ kind: "size-pool", tenantId, poolId }]);
      return `grew by ${add} to ${pool.size + add}`;
    }
    case "remove": {
      const after = await removeFreeDesktops(ports, pool, decision.desktops);
      return `removed ${pool.size - after.size} idle free desktop(s)`;
    }
    case "recheck":
      await ports.jobs.send([{ kind: "size-pool", tenantId, poolId }], {
        delaySeconds: Math.min(900, Math.max(1, Math.ceil(decision.afterMs / 1000))),
      });
      return `free desktops beyond the spare ones: looking again in ${Math.ceil(decision.afterMs / 1000)} s`;
    case "none":
      return "sized";
  }
}

/**
 * The power policy: of the free desktops whose VMs a host runs, keep `poweredOnSpare` (plus one per
 * waiting ticket) running; power the others off, or on again when they are needed.
 */
async function applyPower(
  ports: SizerPorts,
  pool: Pool,
  desktops: Desktop[],
  waiting: number,
  defaults: DefaultDatastore,
) {
  const s = sizingOf(pool);
  if (s.poweredOnSpare === undefined) return "";
  // The region's own datastore is known from configuration (its host too); others from the table.
  const hostOf = async (id: string) =>
    id === defaults.datastoreId ? defaults.hostId : (await ports.datastores.get(id))?.hostId;
  const datastoreIds = [...new Set(desktops.map((d) => d.datastoreId))];
  const hosts = await Promise.all(datastoreIds.map(hostOf));
  const hosted = new Set(datastoreIds.filter((_, i) => hosts[i]));
  const { stop, start } = decidePower(
    s,
    desktops.filter((d) => hosted.has(d.datastoreId)),
    waiting,
  );
  await ports.jobs.send(
    stop.map((d) => ({ kind: "stop-desktop", ...desktopRef(d), generation: d.generation ?? 0 })),
  );
  let started = 0;
  for (const d of start) {
    const fence = { generation: d.generation };
    if (!(await ports.desktops.transition(d, "STOPPED", "STARTING", {}, fence))) continue;
    await ports.jobs.send([{ kind: "start-desktop", ...desktopRef(d), generation: d.generation ?? 0 }]);
    started++;
  }
  return stop.length + started > 0 ? `; powering off ${stop.length}, on ${started}` : "";
}

export type SizingChange = PoolSizingSettings & { size?: number | undefined };

/** Checks a self-sizing pool's settings together (each one alone is checked at the edge). */
export function assertSizing(s: { minSize: number; maxSize: number; spare: number }, prefix = "body") {
  if (s.minSize > s.maxSize)
    throw invalid(`${prefix}.minSize`, `must not be more than maxSize (${s.maxSize})`);
  if (s.spare > s.maxSize) throw invalid(`${prefix}.spare`, `must not be more than maxSize (${s.maxSize})`);
}

/**
 * `PATCH /v1/pools/{id}`: `size` makes the pool a fixed one of that size; the sizing settings make
 * it (or keep it) a self-sizing one, sized at once to its new bounds.
 */
export async function changeSizing(
  ports: SizerPorts,
  tenantId: string,
  poolId: string,
  change: SizingChange,
  defaults: DefaultDatastore,
  quotaDefaults: QuotaLimits,
): Promise<Pool> {
  const pool = await requirePool(ports, tenantId, poolId);
  assertActive(pool);
  if (change.size !== undefined) {
    const fixed = { minSize: undefined, maxSize: undefined, spare: undefined, poweredOnSpare: undefined };
    if (pool.maxSize !== undefined) await ports.pools.setSizing(tenantId, poolId, fixed);
    const resized = await resizePool(ports, tenantId, poolId, change.size, defaults, quotaDefaults);
    return { ...resized, ...fixed };
  }
  const current = sizingOf(pool);
  const next = {
    minSize: change.minSize ?? (current.selfSizing ? current.minSize : pool.size),
    maxSize: change.maxSize ?? (current.selfSizing ? current.maxSize : pool.size),
    spare: change.spare ?? current.spare,
  };
  assertSizing(next);
  const settings = {
    ...next,
    ...(change.poweredOnSpare !== undefined ? { poweredOnSpare: change.poweredOnSpare } : {}),
    ...(change.idleSeconds !== undefined ? { idleSeconds: change.idleSeconds } : {}),
    ...(change.ticketTimeoutSeconds !== undefined
      ? { ticketTimeoutSeconds: change.ticketTimeoutSeconds }
      : {}),
  };
  await ports.pools.setSizing(tenantId, poolId, settings);
  const updated = { ...pool, ...settings };
  // Into its new bounds at once (growth within them follows the users).
  const size = Math.min(next.maxSize, Math.max(next.minSize, Math.min(pool.size, next.maxSize)));
  const sized =
    size === pool.size
      ? updated
      : { ...(await resizePool(ports, tenantId, poolId, size, defaults, quotaDefaults)), ...settings };
  await ports.jobs.send([{ kind: "size-pool", tenantId, poolId }]);
  return sized;
}
