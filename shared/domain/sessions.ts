import type { Ports } from "../ports/index.ts";
import { commitLater, desktopRef } from "./common.ts";
import { notFound } from "./errors.ts";
import { newSessionId } from "./ids.ts";
import type { Desktop, Session, SessionEnding } from "./model.ts";

type LogoffPorts = Pick<Ports, "sessions" | "desktops" | "jobs" | "clock" | "userDataJobs">;

export async function getSession(ports: Pick<Ports, "sessions">, tenantId: string, sessionId: string) {
  const session = await ports.sessions.get(tenantId, sessionId);
  if (!session) throw notFound("session", sessionId);
  return session;
}

/**
 * Ends a session and sends its desktop to refresh. Idempotent: a repeated or stale logoff changes
 * nothing, except that it re-sends the jobs the desktop and the user's data still wait for (so a
 * crash, or a lost answer, between the write and the sends is healed by the client's retry).
 */
export async function logoff(
  ports: LogoffPorts,
  tenantId: string,
  sessionId: string,
  endedBy: SessionEnding,
): Promise<Session> {
  let session = await getSession(ports, tenantId, sessionId);
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
    // Ended meanwhile (by another logoff, or by this one's write whose answer was lost).
    session = await getSession(ports, tenantId, sessionId);
    if (session.state === "ACTIVE") return session;
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
  ports: LogoffPorts,
  event: { tenantId: string; sessionId: string; desktopId: string },
): Promise<"logged-off" | "already-ended" | "ignored"> {
  const session = await ports.sessions.get(event.tenantId, event.sessionId);
  if (!session || session.desktopId !== event.desktopId) return "ignored";
  const wasActive = session.state === "ACTIVE";
  await logoff(ports, event.tenantId, event.sessionId, "event");
  return wasActive ? "logged-off" : "already-ended";
}

/** A new ACTIVE session of a user on a (free) desktop, named after the desktop. */
export function newSession(ports: Pick<Ports, "clock">, desktop: Desktop, userId: string): Session {
  return {
    tenantId: desktop.tenantId,
    sessionId: newSessionId(desktop.poolId, desktop.desktopId),
    poolId: desktop.poolId,
    desktopId: desktop.desktopId,
    userId,
    state: "ACTIVE",
    datastoreId: desktop.datastoreId,
    startedAt: ports.clock.now().toISOString(),
  };
}

/**
 * The user's data disk is attached by a job on the user's FIFO group, so it runs after any commit
 * of their previous session. Sent again on a reconnect (deduplicated by SQS), which heals a logon
 * whose send failed after its claim.
 */
export async function attachUserDataLater(
  ports: Pick<Ports, "userDataJobs">,
  session: Pick<Session, "tenantId" | "userId" | "sessionId">,
  /** The desktop as the claim of this session left it (its console says whether it runs a VM). */
  claimed?: Pick<Desktop, "console" | "sessionId">,
): Promise<void> {
  const { tenantId, userId, sessionId } = session;
  // A desktop holds its console for as long as it holds the session (only a VM's start sets it).
  const vm = claimed?.sessionId === sessionId && !claimed.console ? { vm: false } : {};
  await ports.userDataJobs.send([{ kind: "attach-user-data", tenantId, userId, sessionId, ...vm }]);
}
