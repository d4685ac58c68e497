import type { Ports } from "../ports.ts";
import { conflict, noDesktopAvailable, notFound } from "./errors.ts";
import { newId } from "./ids.ts";
import { type ConnectionInfo, connectionInfo, type Session } from "./model.ts";
import { desktopRef, requirePool } from "./pools.ts";

export interface LogonResult {
  session: Session;
  connection: ConnectionInfo;
  /** True when the user already had a session in this pool and is reconnected to it. */
  reconnected: boolean;
}

const candidatesPerRound = 8;
const maxRounds = 200;

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

const withConnection = (session: Session, reconnected: boolean): LogonResult => ({
  session,
  connection: connectionInfo(session),
  reconnected,
});

/**
 * Floating assignment: any AVAILABLE desktop, taken with one conditional transaction that also
 * claims the user's per-pool lock, so a storm can neither double-assign a desktop nor give a user
 * two desktops. Losing a race on a desktop just moves on to the next candidate; only an empty
 * free list (not a lost race) answers "none free".
 */
export async function logon(
  ports: Pick<Ports, "pools" | "desktops" | "sessions" | "clock">,
  tenantId: string,
  poolId: string,
  userId: string,
): Promise<LogonResult> {
  const pool = await requirePool(ports, tenantId, poolId);
  if (pool.state !== "ACTIVE") throw conflict("pool-not-active", `pool ${poolId} is ${pool.state}`);
  const existing = await ports.sessions.findActive(tenantId, poolId, userId);
  if (existing) return withConnection(existing, true);

  for (let round = 0; round < maxRounds; round++) {
    const candidates = shuffle(await ports.desktops.findFree(tenantId, poolId, candidatesPerRound));
    if (candidates.length === 0) throw noDesktopAvailable(poolId);
    for (const desktop of candidates) {
      const session: Session = {
        tenantId,
        sessionId: newId("ses"),
        poolId,
        desktopId: desktop.desktopId,
        userId,
        state: "ACTIVE",
        startedAt: ports.clock.now().toISOString(),
      };
      const result = await ports.sessions.assign(desktop, session);
      if (result.outcome === "assigned") return withConnection(result.session, false);
      if (result.outcome === "user-has-session") {
        // The same user's concurrent logon won: reconnect to its session.
        const winner = await ports.sessions.findActive(tenantId, poolId, userId);
        if (winner) return withConnection(winner, true);
      }
    }
  }
  throw noDesktopAvailable(poolId);
}

export async function getSession(ports: Pick<Ports, "sessions">, tenantId: string, sessionId: string) {
  const session = await ports.sessions.get(tenantId, sessionId);
  if (!session) throw notFound("session", sessionId);
  return session;
}

/**
 * Ends a session and sends its desktop to refresh. Idempotent: a repeated or stale logoff changes
 * nothing, except that it re-sends the refresh job when the desktop is still waiting for it (so a
 * crash between the write and the send is healed by the client's retry).
 */
export async function logoff(
  ports: Pick<Ports, "sessions" | "desktops" | "jobs" | "clock">,
  tenantId: string,
  sessionId: string,
  endedBy: NonNullable<Session["endedBy"]>,
): Promise<Session> {
  const session = await getSession(ports, tenantId, sessionId);
  if (session.state === "ACTIVE") {
    const endedAt = ports.clock.now().toISOString();
    const result = await ports.sessions.end(session, endedAt, endedBy);
    if (result.outcome === "ended") {
      await ports.jobs.send([{ kind: "refresh-desktop", ...desktopRef(result.desktop), sessionId }]);
      return { ...session, state: "ENDED", endedAt, endedBy };
    }
    return getSession(ports, tenantId, sessionId);
  }
  const desktop = await ports.desktops.get(tenantId, session.poolId, session.desktopId);
  if (desktop?.state === "REFRESHING" && desktop.lastSessionId === sessionId) {
    await ports.jobs.send([{ kind: "refresh-desktop", ...desktopRef(desktop), sessionId }]);
  }
  return session;
}

/**
 * The desktop agent's logoff event. Events are at-least-once and may be stale: an unknown session,
 * or one that names another desktop, is acknowledged and changes nothing.
 */
export async function logoffFromEvent(
  ports: Pick<Ports, "sessions" | "desktops" | "jobs" | "clock">,
  event: { tenantId: string; sessionId: string; desktopId: string },
): Promise<"logged-off" | "already-ended" | "ignored"> {
  const session = await ports.sessions.get(event.tenantId, event.sessionId);
  if (!session || session.desktopId !== event.desktopId) return "ignored";
  const wasActive = session.state === "ACTIVE";
  await logoff(ports, event.tenantId, event.sessionId, "event");
  return wasActive ? "logged-off" : "already-ended";
}
