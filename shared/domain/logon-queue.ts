/**
 * Queued logons. A self-sizing pool with no free desktop, while it can still grow or desktops are
 * on their way, gives the user a ticket instead of a refusal; tickets are served strictly in the
 * order they were made, by one server per pool at a time, as desktops become free. A user who asks
 * again gets the same ticket; a ticket not served in time expires.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { Ports } from "../ports/index.ts";
import { noDesktopAvailable, notFound } from "./errors.ts";
import type { Desktop, LogonTicket, Pool, Session } from "./model.ts";
import { requestSizing, sizingOf } from "./pool-sizing.ts";
import { sessionStarted } from "./session-timeouts.ts";
import { attachUserDataLater, newSession } from "./sessions.ts";

export interface QueuedLogon {
  ticket: LogonTicket;
  /** How many tickets are ahead (0: next to be served). */
  position: number;
}

type QueuePorts = Pick<
  Ports,
  "logonQueue" | "desktops" | "sessions" | "jobs" | "clock" | "userDataJobs" | "metrics" | "pools"
>;

/** Time-ordered ids (ms, then a random tail): tickets sort in the order they were made. */
export const newTicketId = (at: Date) =>
  `tkt-${at.getTime().toString(36).padStart(9, "0")}-${randomBytes(4).toString("hex")}`;

async function describe(ports: Pick<Ports, "logonQueue">, ticket: LogonTicket): Promise<QueuedLogon> {
  const position =
    ticket.state === "WAITING"
      ? await ports.logonQueue.waitingBefore(ticket.tenantId, ticket.poolId, ticket.ticketId)
      : 0;
  return { ticket, position };
}

/**
 * The user's ticket: the one they hold if it still waits, else a new one, unless the users on and
 * waiting already fill the pool's maxSize (503 then, as for a pool that cannot grow). With
 * `reconnect`, the ticket's write also makes sure that the user holds no session in the pool (no
 * lock): only a user who may hold one (refused, or a full line) is looked up, and reconnected.
 * `waiting`: how many tickets the caller saw waiting (a hint; the write's condition decides).
 */
export async function queueLogon<R = never>(
  ports: QueuePorts,
  pool: Pool,
  userId: string,
  opts: { reconnect?: () => Promise<R | undefined>; waiting?: number } = {},
): Promise<QueuedLogon | R> {
  const { reconnect } = opts;
  const { tenantId, poolId } = pool;
  const s = sizingOf(pool);
  // Asked at most once: a lock that names no session its desktop holds (its logon still claiming,
  // or one that died) does not keep the user out of the line, as it never did.
  let unlessOn = reconnect !== undefined;
  const sessionOf = async () => {
    unlessOn = false;
    return reconnect?.();
  };
  // The user's ticket is read only once a write was refused for it: the first write makes a new
  // ticket unless the user holds one whose time has not run out (which the read then answers).
  let held: LogonTicket | undefined;
  for (let round = 0; round < 3; round++) {
    if (round > 0) {
      held = await ports.logonQueue.userTicket(tenantId, poolId, userId);
      if (held?.state === "WAITING") return describe(ports, await expireIfDue(ports, held));
    }
    const now = ports.clock.now();
    const ticket: LogonTicket = {
      tenantId,
      poolId,
      ticketId: newTicketId(now),
      userId,
      state: "WAITING",
      createdAt: now.toISOString(),
      validUntil: new Date(now.getTime() + s.ticketTimeoutSeconds * 1000).toISOString(),
    };
    // No room: a user on reconnects, and the user's own waiting ticket is still theirs.
    const full = async () => {
      const on = unlessOn ? await sessionOf() : undefined;
      if (on) return on;
      const mine = round === 0 ? await ports.logonQueue.userTicket(tenantId, poolId, userId) : undefined;
      if (mine?.state === "WAITING") return describe(ports, await expireIfDue(ports, mine));
      throw noDesktopAvailable(poolId);
    };
    const enqueue = async (limit: number) => {
      for (let tries = 1; ; tries++) {
        const outcome = await ports.logonQueue.enqueue(ticket, limit, held?.ticketId, { unlessOn });
        if (outcome !== "behind") return outcome;
        if (tries === 5) return "raced";
        // The server serves tickets past this one's time (its write came late): it joins the line's
        // end, as made now, never before tickets already served. A little later each time: a clock
        // a few milliseconds behind the server's page catches up.
        await new Promise((r) => setTimeout(r, 10 * 2 ** tries));
        const later = ports.clock.now();
        ticket.ticketId = newTicketId(later);
        ticket.createdAt = later.toISOString();
        ticket.validUntil = new Date(later.getTime() + s.ticketTimeoutSeconds * 1000).toISOString();
      }
    };
    // The pool's size bounds the users on: while it leaves room beside the line, nothing is counted
    // (a storm's every logon would otherwise read all the pool's desktops); near maxSize, they are.
    // A line the caller saw too long for that bound is counted at once (the write would be refused).
    const room = s.maxSize - pool.size;
    let outcome = room > 0 && (opts.waiting ?? 0) < room ? await enqueue(room) : "full";
    // A ticket being served counts twice for a moment (its user is on, its ticket not yet
    // settled): a line that looks full while fewer users are on is looked at again shortly.
    for (let look = 0; outcome === "full" && look < 4; look++) {
      if (look > 0) await new Promise((r) => setTimeout(r, 100 * look));
      const assigned = await ports.desktops.countAssigned(tenantId, poolId);
      if (assigned >= s.maxSize) return full();
      outcome = await enqueue(s.maxSize - assigned);
    }
    if (outcome === "full") return full();
    if (outcome === "on") {
      const on = await sessionOf();
      if (on) return on;
    }
    if (outcome !== "queued") continue;
    ports.metrics.record(tenantId, "logonsQueued", 1);
    const [queued] = await Promise.all([describe(ports, ticket), requestSizing(ports, tenantId, poolId)]);
    // The first in line starts the server (a desktop may be free while the line forms); behind
    // another ticket, the server that serves it serves this one too: it looks again until the
    // line is empty, and the count it looks at includes this ticket.
    if (queued.position === 0) await serveLater(ports, pool);
    return queued;
  }
  throw noDesktopAvailable(poolId);
}

/** GET /v1/pools/{poolId}/logons/{ticketId}: the ticket, its place in line, its session once served. */
export async function getTicket(
  ports: Pick<Ports, "logonQueue" | "pools" | "clock" | "metrics">,
  tenantId: string,
  poolId: string,
  ticketId: string,
): Promise<QueuedLogon> {
  const ticket = await ports.logonQueue.get(tenantId, poolId, ticketId);
  if (!ticket) throw notFound("ticket", ticketId);
  return describe(ports, await expireIfDue(ports, ticket));
}

/** A waiting ticket past its time expires (whoever looks first: its holder or the server). */
async function expireIfDue(ports: Pick<Ports, "logonQueue" | "clock">, ticket: LogonTicket) {
  const now = ports.clock.now();
  if (ticket.state !== "WAITING" || Date.parse(ticket.validUntil) > now.getTime()) return ticket;
  await ports.logonQueue.settle(ticket, "EXPIRED", now.toISOString());
  return (await ports.logonQueue.get(ticket.tenantId, ticket.poolId, ticket.ticketId)) ?? ticket;
}

export const serveLater = (ports: Pick<Ports, "jobs">, pool: Pick<Pool, "tenantId" | "poolId">) =>
  ports.jobs.send([{ kind: "serve-logons", tenantId: pool.tenantId, poolId: pool.poolId }]);

/** A lease long enough for one serving run; a server that dies frees the queue after it. */
const serveLeaseMs = 30_000;

/**
 * The `serve-logons` job: hands free desktops to the oldest tickets, one at a time, in order. Only
 * the holder of the pool's serving lease serves, so the order holds with many workers; a ticket
 * or a desktop that came while it held the lease is looked at again before it stops.
 */
export async function serveLogons(ports: QueuePorts, tenantId: string, poolId: string): Promise<string> {
  const holder = randomUUID();
  if (!(await ports.logonQueue.lease(tenantId, poolId, "serving", holder, serveLeaseMs)).taken)
    return "skipped: another worker serves the queue";
  let served = 0;
  try {
    served = await serveInOrder(ports, tenantId, poolId);
  } finally {
    await ports.logonQueue.release(tenantId, poolId, "serving", holder);
  }
  // Users still wait: look again shortly (a desktop freed while the lease was held, or one the
  // free index shows a moment late, is not missed), until the queue is empty.
  if ((await ports.logonQueue.waiting(tenantId, poolId)) > 0)
    await ports.jobs.send([{ kind: "serve-logons", tenantId, poolId }], { delaySeconds: 1 });
  return `served ${served} ticket(s)`;
}

/** Tickets (and free desktops) looked at per query while serving. */
const servePage = 25;

/**
 * Serves pages of the line until it is empty or no desktop is free. The server does not wait for
 * desktops on their way: it would hold a worker the provisioning needs; each set of desktops
 * provisioned starts it again (desktopsFreed), and it looks again a second later while users wait.
 */
async function serveInOrder(ports: QueuePorts, tenantId: string, poolId: string): Promise<number> {
  let served = 0;
  // What follows a served ticket (its user's data, its timeouts) runs beside the next
  // ones; a page's are done before the next page is read.
  const followUps: Promise<unknown>[] = [];
  try {
    for (let page = 0; page < 100; page++) {
      await Promise.all(followUps.splice(0));
      const page = await ports.logonQueue.oldestWaiting(tenantId, poolId, servePage);
      const last = page.at(-1);
      if (!last) break;
      // Fenced, then read again: a ticket made before the page's last but written after the first
      // read is in the page now, and any written after the fence joins behind it (strict order).
      await ports.logonQueue.fenceServing(tenantId, poolId, last.ticketId);
      const heads = (await ports.logonQueue.oldestWaiting(tenantId, poolId, servePage)).filter(
        (h) => h.ticketId <= last.ticketId,
      );
      if (heads.length === 0) break;
      if (await servePageInOrder(ports, tenantId, poolId, heads, followUps, () => served++)) break;
    }
  } finally {
    await Promise.all(followUps);
  }
  return served;
}

/**
 * Serves these tickets in order; answers whether to stop (no free desktop for the next one). The
 * page's claims run at once, each ticket on its own free desktop; the tickets are then settled in
 * line order. A claim that loses its desktop (one the free index listed a moment late) tries the
 * next free ones; should none be left, the tickets behind it that got one are served all the same
 * and it goes first once a desktop is free: the one way a ticket is passed, and only by a ticket
 * of the same page.
 */
async function servePageInOrder(
  ports: QueuePorts,
  tenantId: string,
  poolId: string,
  heads: LogonTicket[],
  followUps: Promise<unknown>[],
  onServed: () => void,
): Promise<boolean> {
  const live: LogonTicket[] = [];
  for (const head of heads) {
    const now = ports.clock.now();
    if (Date.parse(head.validUntil) > now.getTime()) live.push(head);
    else await ports.logonQueue.settle(head, "EXPIRED", now.toISOString());
  }
  let free = await ports.desktops.findFree(tenantId, poolId, servePage);
  const claims = await Promise.all(
    live.slice(0, free.length).map((head, i) => claim(ports, head, free[i] as Desktop)),
  );
  free = free.slice(claims.length);
  let starved = claims.length < live.length;
  const served: { ticket: LogonTicket; at: string; sessionId: string }[] = [];
  for (const [i, head] of live.slice(0, claims.length).entries()) {
    let claimed = claims[i];
    for (let looks = 0; claimed === "desktop-taken"; ) {
      if (free.length === 0 && looks++ < 3) free = await ports.desktops.findFree(tenantId, poolId, servePage);
      const desktop = free.shift();
      if (!desktop) break;
      claimed = await claim(ports, head, desktop);
    }
    if (claimed === "desktop-taken") {
      starved = true;
      continue;
    }
    if (!claimed) continue;
    // Settled in line order: each ticket's time is taken after the one before it.
    const at = ports.clock.now().toISOString();
    served.push({ ticket: head, at, sessionId: claimed.session.sessionId });
    if (claimed.assigned)
      followUps.push(
        attachUserDataLater(ports, claimed.session, claimed.desktop),
        sessionStarted(ports, claimed.session),
      );
    ports.metrics.record(tenantId, "ticketWaitSeconds", (Date.parse(at) - Date.parse(head.createdAt)) / 1000);
    onServed();
  }
  // One write for the page's served tickets (each of them moves the pool's one count), at once:
  // until it is done, their users count twice against maxSize.
  await ports.logonQueue.settleServed(served);
  return starved;
}

/**
 * A ticket's user on this desktop: the session, whether it is a new one, or that the desktop was
 * taken. Undefined: the user holds a session elsewhere that cannot be found (the ticket stays).
 */
async function claim(
  ports: QueuePorts,
  head: LogonTicket,
  desktop: Desktop,
): Promise<{ session: Session; assigned: boolean; desktop?: Desktop } | "desktop-taken" | undefined> {
  const result = await ports.sessions.assign(newSession(ports, desktop, head.userId));
  if (result.outcome === "assigned")
    return {
      session: result.session,
      assigned: true,
      ...(result.desktop ? { desktop: result.desktop } : {}),
    };
  if (result.outcome === "desktop-taken") return "desktop-taken";
  // Logged on meanwhile (another pool's logon cannot take this pool's lock): that session serves.
  const session = await ports.sessions.findActive(head.tenantId, head.poolId, head.userId);
  return session ? { session, assigned: false } : undefined;
}
