import type { Ports } from "../ports.ts";
import { conflict, DomainError, noDesktopAvailable } from "./errors.ts";
import type { Desktop, Pool } from "./model.ts";
import { existingSession, type LogonResult, newSession, withConnection as result } from "./sessions.ts";

/**
 * A pool's assignment never changes after it is created, so a process may remember it: floating
 * logons (the storm path) then make no pool read at all.
 */
const assignments = new Map<string, Pool["assignment"]>();

async function assignmentOf(ports: Pick<Ports, "pools">, tenantId: string, poolId: string) {
  const key = `${tenantId}/${poolId}`;
  const known = assignments.get(key);
  if (known) return known;
  const pool = await ports.pools.get(tenantId, poolId);
  if (!pool) return undefined;
  if (assignments.size > 10_000) assignments.clear();
  assignments.set(key, pool.assignment);
  return pool.assignment;
}

/**
 * Dedicated assignment: a user's first logon takes a free desktop and makes it theirs (the owner
 * item and the desktop's `assignedUserId`, written in the same transaction as the session); every
 * later logon gets that same desktop back. Returns undefined for a floating pool.
 */
export async function dedicatedLogon(
  ports: Pick<Ports, "pools" | "desktops" | "sessions" | "clock">,
  tenantId: string,
  poolId: string,
  userId: string,
): Promise<LogonResult | undefined> {
  if ((await assignmentOf(ports, tenantId, poolId)) !== "dedicated") return undefined;
  const pool = await ports.pools.get(tenantId, poolId);
  if (!pool) return undefined;
  if (pool.state !== "ACTIVE") throw conflict("pool-not-active", `pool ${poolId} is ${pool.state}`);
  const sessionOn = (desktop: Desktop) => newSession(ports, desktop, userId);
  for (let round = 0; round < 50; round++) {
    const ownedId = await ports.sessions.ownedDesktop(tenantId, poolId, userId);
    const owned = ownedId ? await ports.desktops.get(tenantId, poolId, ownedId) : undefined;
    let desktop: Desktop | undefined = owned;
    if (!ownedId) {
      const free = await ports.desktops.findFree(tenantId, poolId, 8);
      if (free.length === 0) throw noDesktopAvailable(poolId);
      desktop = free[Math.floor(Math.random() * free.length)];
    } else if (owned?.state === "ASSIGNED") {
      const existing = await ports.sessions.findActive(tenantId, poolId, userId);
      if (existing) return result(existing, true);
      continue;
    } else if (owned?.state !== "AVAILABLE") {
      throw new DomainError(
        "desktop-not-ready",
        503,
        `your desktop ${ownedId} is ${owned?.state ?? "gone"}; retry shortly`,
        { retryAfterSeconds: 5 },
      );
    }
    const assigned = await ports.sessions.assign(desktop as Desktop, sessionOn(desktop as Desktop), {
      dedicate: !ownedId,
    });
    if (assigned.outcome === "assigned") return result(assigned.session, false);
    if (assigned.outcome === "user-has-session") {
      const existing = await existingSession(ports, tenantId, poolId, userId);
      if (existing) return existing;
    }
  }
  throw noDesktopAvailable(poolId);
}
