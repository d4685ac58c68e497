/**
 * Logon: floating pools hand out any free desktop, dedicated pools give each user their own one.
 * Both claim with conditional writes after the user's per-pool lock is taken (see the session
 * repository), so a storm can neither double-assign a desktop nor give a user two desktops.
 */
import type { Ports } from "../ports/index.ts";
import { assertActive, requirePool } from "./common.ts";
import { connect } from "./connection.ts";
import { assertNotFenced } from "./dr.ts";
import { DomainError, noDesktopAvailable, notFound } from "./errors.ts";
import { type QueuedLogon, queueLogon } from "./logon-queue.ts";
import type { ConnectionInfo, Desktop, Pool, Session } from "./model.ts";
import { requestSizing, sizingOf } from "./pool-sizing.ts";
import { sessionStarted } from "./session-timeouts.ts";
import { attachUserDataLater, newSession } from "./sessions.ts";

export interface LogonResult {
  session: Session;
  connection: ConnectionInfo;
  /** True when the user already had a session in this pool and is reconnected to it. */
  reconnected: boolean;
  /** Attached by a job (never on the logon path); GET the session to see it ATTACHED. */
  userData?: { state: "ATTACHING" };
}

type LogonPorts = Pick<
  Ports,
  | "pools"
  | "desktops"
  | "sessions"
  | "clock"
  | "userDataJobs"
  | "jobs"
  | "dr"
  | "peer"
  | "logonQueue"
  | "metrics"
>;

const maxRounds = 200;

/** The session with a fresh connection to its desktop (reading the desktop when not at hand). */
async function withConnection(
  ports: Pick<Ports, "desktops" | "jobs" | "clock" | "pools">,
  session: Session,
  reconnected: boolean,
  desktop?: Desktop,
): Promise<LogonResult> {
  const at = desktop ?? (await ports.desktops.get(session.tenantId, session.poolId, session.desktopId));
  // A new session starts its pool's maximum-lifetime clock.
  const [connection] = await Promise.all([
    connect(ports, at, session),
    reconnected ? undefined : sessionStarted(ports, session),
  ]);
  return { session, connection, reconnected };
}

/**
 * Floating assignment takes the first free desktop at a well-spread starting point, one candidate
 * per look: under a storm a list goes stale in milliseconds, so a lost race is followed by a fresh
 * look, and only an empty free list (not a lost race) answers "none free".
 */
export async function logon(
  ports: LogonPorts,
  tenantId: string,
  poolId: string,
  userId: string,
): Promise<LogonResult | QueuedLogon> {
  const [, traits] = await Promise.all([assertNotFenced(ports, tenantId), traitsOf(ports, tenantId, poolId)]);
  if (traits?.assignment === "dedicated")
    return attachingUserData(ports, await dedicatedLogon(ports, tenantId, poolId, userId));
  const selfSizing = traits?.selfSizing === true;
  // Floating: no read before the claim. A reconnecting user fails the user-lock condition and is
  // answered from the lock; an unknown or draining pool has no free desktop. In a self-sizing
  // pool nobody passes the users already waiting in line.
  for (let round = 0; round < maxRounds; round++) {
    // While users wait, no free desktop is looked for (in a storm, most logons meet a line).
    const waiting = selfSizing ? await ports.logonQueue.waiting(tenantId, poolId) : 0;
    if (waiting > 0) return noFreeDesktop(ports, tenantId, poolId, userId, waiting);
    const [desktop] = await ports.desktops.findFree(tenantId, poolId, 1);
    if (!desktop) return noFreeDesktop(ports, tenantId, poolId, userId);
    const result = await ports.sessions.assign(newSession(ports, desktop, userId));
    if (result.outcome === "assigned") {
      if (selfSizing) await requestSizing(ports, tenantId, poolId);
      const claimed = result.desktop ?? desktop;
      return attachingUserData(
        ports,
        await withConnection(ports, result.session, false, claimed),
        result.desktop,
      );
    }
    if (result.outcome === "user-has-session") {
      const existing = await existingSession(ports, tenantId, poolId, userId);
      if (existing) return attachingUserData(ports, existing);
    }
  }
  return noFreeDesktop(ports, tenantId, poolId, userId);
}

/**
 * What a logon needs of its pool: its assignment (which never changes) and whether it sizes itself
 * (which a PATCH may change: remembered for a few seconds). Floating logons (the storm path) then
 * make no pool read at all.
 */
interface PoolTraits {
  assignment: Pool["assignment"];
  selfSizing: boolean;
  readAt: number;
}
const traits = new Map<string, PoolTraits>();
const traitsTtlMs = 5_000;

/** Reads under way: logons that arrive together share one. */
const reading = new Map<string, Promise<PoolTraits | undefined>>();

async function traitsOf(ports: Pick<Ports, "pools">, tenantId: string, poolId: string) {
  const key = `${tenantId}/${poolId}`;
  const known = traits.get(key);
  if (known && Date.now() - known.readAt < traitsTtlMs) return known;
  const pending = reading.get(key);
  if (pending) return pending;
  const read = ports.pools
    .get(tenantId, poolId)
    .then((pool) => {
      if (!pool) return undefined;
      if (traits.size > 10_000) traits.clear();
      const now = { assignment: pool.assignment, selfSizing: sizingOf(pool).selfSizing, readAt: Date.now() };
      traits.set(key, now);
      return now;
    })
    .finally(() => reading.delete(key));
  reading.set(key, read);
  return read;
}

/**
 * Dedicated assignment: a user's first logon takes a free desktop and makes it theirs (the owner
 * item and the desktop's `assignedUserId`, written in the same transaction as the session); every
 * later logon gets that same desktop back.
 */
async function dedicatedLogon(
  ports: LogonPorts,
  tenantId: string,
  poolId: string,
  userId: string,
): Promise<LogonResult> {
  assertActive(await requirePool(ports, tenantId, poolId));
  for (let round = 0; round < 50; round++) {
    const ownedId = await ports.sessions.ownedDesktop(tenantId, poolId, userId);
    let desktop: Desktop | undefined;
    if (!ownedId) {
      const free = await ports.desktops.findFree(tenantId, poolId, 8);
      desktop = free[Math.floor(Math.random() * free.length)];
      if (!desktop) throw noDesktopAvailable(poolId);
    } else {
      desktop = await ports.desktops.get(tenantId, poolId, ownedId);
      if (desktop?.state === "ASSIGNED") {
        const existing = await ports.sessions.findActive(tenantId, poolId, userId);
        if (existing) return withConnection(ports, existing, true, desktop);
        continue;
      }
      if (desktop?.state !== "AVAILABLE") {
        throw new DomainError(
          "desktopNotReady",
          `your desktop ${ownedId} is ${desktop?.state ?? "gone"}; retry shortly`,
          { retryAfterSeconds: 5 },
        );
      }
    }
    const assigned = await ports.sessions.assign(newSession(ports, desktop, userId), {
      dedicate: !ownedId,
    });
    if (assigned.outcome === "assigned") return withConnection(ports, assigned.session, false, desktop);
    if (assigned.outcome === "user-has-session") {
      const existing = await existingSession(ports, tenantId, poolId, userId);
      if (existing) return existing;
    }
  }
  throw noDesktopAvailable(poolId);
}

/**
 * The user holds the pool's lock: reconnect to that session once its desktop holds it. A lock
 * still being claimed by a concurrent logon is waited for a moment; one left by a logon that died
 * is released so that the next round can take it.
 */
async function existingSession(
  ports: Pick<Ports, "sessions" | "desktops" | "jobs" | "clock" | "pools">,
  tenantId: string,
  poolId: string,
  userId: string,
): Promise<LogonResult | undefined> {
  const existing = await ports.sessions.findActive(tenantId, poolId, userId);
  if (existing) return withConnection(ports, existing, true);
  if ((await ports.sessions.releaseStaleLock(tenantId, poolId, userId)) === "pending") {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return undefined;
}

/** The user's data disk is attached by a job (sessions.ts); the answer says it is on its way. */
async function attachingUserData(
  ports: Pick<Ports, "userDataJobs">,
  result: LogonResult,
  claimed?: Desktop,
): Promise<LogonResult> {
  await attachUserDataLater(ports, result.session, claimed);
  return { ...result, userData: { state: "ATTACHING" } };
}

/**
 * Nothing free (or users wait in line): a user who already has a session reconnects; in a pool that
 * sizes itself the user gets a ticket; otherwise say precisely why. The ticket's write makes sure
 * the user has no session: their session is looked up first only where no ticket is made.
 */
async function noFreeDesktop(
  ports: LogonPorts,
  tenantId: string,
  poolId: string,
  userId: string,
  /** How many tickets the logon saw waiting. */
  waiting?: number,
): Promise<LogonResult | QueuedLogon> {
  const reconnect = async () => {
    const existing = await ports.sessions.findActive(tenantId, poolId, userId);
    return existing && attachingUserData(ports, await withConnection(ports, existing, true));
  };
  const pool = await ports.pools.get(tenantId, poolId);
  if (pool?.state === "ACTIVE" && sizingOf(pool).selfSizing)
    return queueLogon(ports, pool, userId, { reconnect, waiting });
  const existing = await reconnect();
  if (existing) return existing;
  if (!pool) throw notFound("pool", poolId);
  assertActive(pool);
  throw noDesktopAvailable(poolId);
}
