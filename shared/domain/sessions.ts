import type { Ports } from "../ports.ts";
import { dedicatedLogon } from "./dedicated.ts";
import { conflict, noDesktopAvailable, notFound } from "./errors.ts";
import { newSessionId } from "./ids.ts";
import { type ConnectionInfo, connectionInfo, type Desktop, type Session } from "./model.ts";
import { desktopRef, requirePool } from "./pools.ts";

export interface LogonResult {
  session: Session;
  connection: ConnectionInfo;
  /** True when the user already had a session in this pool and is reconnected to it. */
  reconnected: boolean;
  /** Attached by a job (never on the logon path); GET the session to see it ATTACHED. */
  userData?: { state: "ATTACHING" };
}

const candidatesPerRound = 1;
const maxRounds = 200;

export const withConnection = (session: Session, reconnected: boolean): LogonResult => ({
  session,
  connection: connectionInfo(session),
  reconnected,
});

/**
 * Floating assignment: any AVAILABLE desktop, claimed with a conditional write after the user's
 * per-pool lock is taken (see the repository's assign), so a storm can neither double-assign a
 * desktop nor give a user two desktops. Losing a race on a desktop just means another look; only
 * an empty free list (not a lost race) answers "none free".
 */
export async function logon(
  ports: Pick<Ports, "pools" | "desktops" | "sessions" | "clock" | "userDataJobs">,
  tenantId: string,
  poolId: string,
  userId: string,
): Promise<LogonResult> {
  // Dedicated pools (issue 3) give a user their own desktop back: see dedicated.ts.
  const dedicated = await dedicatedLogon(ports, tenantId, poolId, userId);
  if (dedicated) return attachingUserData(ports, dedicated);
  // Fast path (floating): no read before the claim. A reconnecting user fails the user-lock
  // condition and is answered from the lock; an unknown or draining pool has no free desktop.
  for (let round = 0; round < maxRounds; round++) {
    const candidates = await ports.desktops.findFree(tenantId, poolId, candidatesPerRound);
    if (candidates.length === 0) return noFreeDesktop(ports, tenantId, poolId, userId);
    // One candidate per look (the first free one at a well-spread starting point): under a storm a
    // list goes stale in milliseconds, so a lost race is followed by a fresh look.
    const desktop = candidates[0] as Desktop;
    const result = await ports.sessions.assign(desktop, newSession(ports, desktop, userId));
    if (result.outcome === "assigned") return attachingUserData(ports, withConnection(result.session, false));
    if (result.outcome === "user-has-session") {
      const existing = await existingSession(ports, tenantId, poolId, userId);
      if (existing) return attachingUserData(ports, existing);
    }
  }
  return noFreeDesktop(ports, tenantId, poolId, userId);
}

/**
 * The user holds the pool's lock: reconnect to that session once its desktop holds it. A lock
 * still being claimed by a concurrent logon is waited for a moment; one left by a logon that died
 * is released so that the next round can take it.
 */
export async function existingSession(
  ports: Pick<Ports, "sessions">,
  tenantId: string,
  poolId: string,
  userId: string,
): Promise<LogonResult | undefined> {
  const existing = await ports.sessions.findActive(tenantId, poolId, userId);
  if (existing) return withConnection(existing, true);
  if ((await ports.sessions.releaseStaleLock(tenantId, poolId, userId)) === "pending") {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return undefined;
}

export function newSession(ports: Pick<Ports, "clock">, desktop: Desktop, userId: string): Session {
  return {
    tenantId: desktop.tenantId,
    sessionId: newSessionId(desktop.poolId, desktop.desktopId),
    poolId: desktop.poolId,
    desktopId: desktop.desktopId,
    userId,
    state: "ACTIVE",
    startedAt: ports.clock.now().toISOString(),
  };
}

/**
 * The user's data disk is attached by a job on the user's FIFO group, so it runs after any
 * commit of their previous session. Sent again on a reconnect (deduplicated by SQS), which heals
 * a logon whose send failed after its claim.
 */
async function attachingUserData(
  ports: Pick<Ports, "userDataJobs">,
  result: LogonResult,
): Promise<LogonResult> {
  const { tenantId, userId, sessionId } = result.session;
  await ports.userDataJobs.send([{ kind: "attach-user-data", tenantId, userId, sessionId }]);
  return { ...result, userData: { state: "ATTACHING" } };
}

/** Nothing free: a user who already has a session reconnects; otherwise say precisely why. */
async function noFreeDesktop(
  ports: Pick<Ports, "pools" | "sessions" | "userDataJobs">,
  tenantId: string,
  poolId: string,
  userId: string,
): Promise<LogonResult> {
  const existing = await ports.sessions.findActive(tenantId, poolId, userId);
  if (existing) return attachingUserData(ports, withConnection(existing, true));
  const pool = await requirePool(ports, tenantId, poolId);
  if (pool.state !== "ACTIVE") throw conflict("pool-not-active", `pool ${poolId} is ${pool.state}`);
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
  ports: Pick<Ports, "sessions" | "desktops" | "jobs" | "clock" | "userDataJobs">,
  tenantId: string,
  sessionId: string,
  endedBy: NonNullable<Session["endedBy"]>,
): Promise<Session> {
  const session = await getSession(ports, tenantId, sessionId);
  if (session.state === "ACTIVE") {
    const endedAt = ports.clock.now().toISOString();
    const result = await ports.sessions.end(session, endedAt, endedBy);
    if (result.outcome === "ended") {
      await Promise.all([
        ports.jobs.send([{ kind: "refresh-desktop", ...desktopRef(result.desktop), sessionId }]),
        commitLater(ports, session),
      ]);
      return { ...session, state: "ENDED", endedAt, endedBy };
    }
    return getSession(ports, tenantId, sessionId);
  }
  // A repeated logoff re-sends the commit too: it is idempotent, and heals a lost send.
  await commitLater(ports, session);
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
  ports: Pick<Ports, "sessions" | "desktops" | "jobs" | "clock" | "userDataJobs">,
  event: { tenantId: string; sessionId: string; desktopId: string },
): Promise<"logged-off" | "already-ended" | "ignored"> {
  const session = await ports.sessions.get(event.tenantId, event.sessionId);
  if (!session || session.desktopId !== event.desktopId) return "ignored";
  const wasActive = session.state === "ACTIVE";
  await logoff(ports, event.tenantId, event.sessionId, "event");
  return wasActive ? "logged-off" : "already-ended";
}

/** The session's user data becomes the user's next disk version (a job on the user's FIFO group). */
export function commitLater(
  ports: Pick<Ports, "userDataJobs">,
  session: Pick<Session, "tenantId" | "userId" | "sessionId">,
): Promise<void> {
  const { tenantId, userId, sessionId } = session;
  return ports.userDataJobs.send([{ kind: "commit-user-data", tenantId, userId, sessionId }]);
}
