/**
 * Pools that size themselves: a pool with a `maxSize` keeps `spare` desktops free (provisioned
 * ahead) for the users who are on or waiting, within [minSize, maxSize], and removes free desktops
 * beyond that once they have been idle a while. A pool without one keeps its `size`.
 */
import { randomUUID } from "node:crypto";
import type { Ports } from "../ports/index.ts";
import type { Desktop, Pool } from "./model.ts";

export interface PoolSizing {
  selfSizing: boolean;
  minSize: number;
  maxSize: number;
  spare: number;
  /** Undefined: every free desktop's VM runs. */
  poweredOnSpare: number | undefined;
  idleSeconds: number;
  ticketTimeoutSeconds: number;
}

export const defaultIdleSeconds = 600;
export const defaultTicketTimeoutSeconds = 300;

export function sizingOf(pool: Pool): PoolSizing {
  const selfSizing = pool.maxSize !== undefined;
  return {
    selfSizing,
    minSize: selfSizing ? (pool.minSize ?? 0) : pool.size,
    maxSize: pool.maxSize ?? pool.size,
    spare: pool.spare ?? 0,
    poweredOnSpare: selfSizing ? pool.poweredOnSpare : undefined,
    idleSeconds: pool.idleSeconds ?? defaultIdleSeconds,
    ticketTimeoutSeconds: pool.ticketTimeoutSeconds ?? defaultTicketTimeoutSeconds,
  };
}

/** A new self-sizing pool starts with its minimum, or its spare desktops if that is more. */
export const initialSize = (s: Pick<PoolSizing, "minSize" | "maxSize" | "spare">) =>
  Math.min(s.maxSize, Math.max(s.minSize, s.spare));

export type SizingDecision =
  | { action: "add"; count: number }
  | { action: "remove"; desktops: Desktop[] }
  /** Free desktops beyond the spare ones will have been idle long enough after this long. */
  | { action: "recheck"; afterMs: number }
  | { action: "none" };

/**
 * Pure: what the pool needs now. Wanted are the desktops of the users who are on (ASSIGNED) or
 * waiting (tickets), plus the spare ones, plus, while users wait, as many again as wait: a line
 * means users come faster than desktops, and more are coming (a morning storm), so the pool
 * provisions ahead of it. The pool grows to that (never past maxSize) and shrinks to it (never
 * below minSize) by removing free desktops that have been free for `idleSeconds`.
 */
export function decideSizing(
  s: PoolSizing,
  size: number,
  desktops: Pick<Desktop, "state" | "updatedAt" | "desktopId" | "tenantId" | "poolId" | "datastoreId">[],
  waiting: number,
  now: number,
): SizingDecision {
  if (!s.selfSizing) return { action: "none" };
  const assigned = desktops.filter((d) => d.state === "ASSIGNED").length;
  const target = Math.max(s.minSize, Math.min(s.maxSize, assigned + 2 * waiting + s.spare));
  if (size < target) return { action: "add", count: target - size };
  const excess = size - target;
  if (excess <= 0 || waiting > 0) return { action: "none" };
  const idleSince = (d: { updatedAt: string }) => Date.parse(d.updatedAt);
  // Stopped desktops go first: they are free and cost nothing to lose.
  const rank = (d: { state: string }) => (d.state === "STOPPED" ? 0 : 1);
  const free = desktops
    .filter((d) => d.state === "AVAILABLE" || d.state === "STOPPED")
    .sort((a, b) => rank(a) - rank(b) || idleSince(a) - idleSince(b));
  const idle = free.filter((d) => now - idleSince(d) >= s.idleSeconds * 1000).slice(0, excess);
  if (idle.length > 0) return { action: "remove", desktops: idle as Desktop[] };
  const next = free[0];
  return next
    ? { action: "recheck", afterMs: idleSince(next) + s.idleSeconds * 1000 - now }
    : { action: "none" };
}

/**
 * Pure: which free desktops' VMs to power off or on. Running free ones (AVAILABLE, or STARTING on
 * their way) are kept at `poweredOnSpare` plus one per waiting ticket; the rest are STOPPED.
 */
export function decidePower<D extends Pick<Desktop, "state" | "updatedAt">>(
  s: Pick<PoolSizing, "poweredOnSpare">,
  desktops: D[],
  waiting: number,
): { stop: D[]; start: D[] } {
  if (s.poweredOnSpare === undefined) return { stop: [], start: [] };
  const running = desktops.filter((d) => d.state === "AVAILABLE" || d.state === "STARTING");
  const stopped = desktops.filter((d) => d.state === "STOPPED");
  const want = s.poweredOnSpare + waiting;
  if (running.length > want) {
    // The longest idle go first; only a free one (AVAILABLE) can be powered off.
    const idle = running
      .filter((d) => d.state === "AVAILABLE")
      .sort((a, b) => Date.parse(a.updatedAt) - Date.parse(b.updatedAt));
    return { stop: idle.slice(0, running.length - want), start: [] };
  }
  return { stop: [], start: stopped.slice(0, want - running.length) };
}

/** Coalesces sizing requests: one sizer job per pool at most every this long. */
const sizingEveryMs = 2000;
/** Per pool, until when this process knows a sizing lease is held (its job still to run). */
const sizingHeldUntil = new Map<string, number>();

/**
 * Asks for the pool to be sized soon. Requests within the lease's span share one job, which runs
 * once the span is over, so it sees every change made during it.
 */
export async function requestSizing(
  ports: Pick<Ports, "logonQueue" | "jobs">,
  tenantId: string,
  poolId: string,
): Promise<void> {
  // A lease this process saw held still has its job to come, after the span: nothing to ask (in a
  // storm, most logons of a process need not write to learn it).
  const key = `${tenantId}/${poolId}`;
  if ((sizingHeldUntil.get(key) ?? 0) > Date.now()) return;
  const lease = await ports.logonQueue.lease(tenantId, poolId, "sizing", randomUUID(), sizingEveryMs);
  if (sizingHeldUntil.size > 10_000) sizingHeldUntil.clear();
  sizingHeldUntil.set(key, lease.until);
  if (!lease.taken) return;
  await ports.jobs.send([{ kind: "size-pool", tenantId, poolId }], {
    delaySeconds: Math.ceil(sizingEveryMs / 1000),
  });
}
