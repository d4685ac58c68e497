/**
 * A user's connection to their desktop. A VM desktop is reached over VNC on its host with a
 * one-time password: a new one at every logon (a reconnect too), set on the VM by the host
 * through a `connect-session` job, so the previous user's password never opens it; the
 * password is answered once and stored nowhere.
 */
import { randomInt, randomUUID } from "node:crypto";
import type { Ports } from "../ports/index.ts";
import { desktopRef } from "./common.ts";
import { DomainError, notFound } from "./errors.ts";
import type { ConnectionInfo, Desktop, Session } from "./model.ts";

/** A password is good for connecting for this long; a connection made with it stays open. */
export const connectionPasswordTtlMs = 10 * 60_000;

const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/** VNC authentication takes at most 8 characters: 8 of 56, about 46 bits. */
export function oneTimePassword(): string {
  return Array.from({ length: 8 }, () => alphabet[randomInt(alphabet.length)]).join("");
}

const external: ConnectionInfo = {
  protocol: "external",
  detail: "this desktop's VM is run by another system; connect through it",
};

export async function connect(
  ports: Pick<Ports, "jobs" | "clock">,
  desktop: Pick<Desktop, "console" | "datastoreId"> | undefined,
  session: Session,
): Promise<ConnectionInfo> {
  if (!desktop?.console) return external;
  const password = oneTimePassword();
  const expiresAt = new Date(ports.clock.now().getTime() + connectionPasswordTtlMs).toISOString();
  await ports.jobs.send([
    {
      kind: "connect-session",
      ...desktopRef({ ...session, datastoreId: desktop.datastoreId }),
      sessionId: session.sessionId,
      userId: session.userId,
      password,
      expiresAt,
    },
  ]);
  return { protocol: "vnc", ...desktop.console, password, expiresAt, state: "PREPARING" };
}

/** What a session shows of its connection later: where, and whether it is ready (never the password). */
export function connectionOf(
  desktop: Pick<Desktop, "console" | "connectedSessionId"> | undefined,
  session: Pick<Session, "sessionId" | "state">,
): ConnectionInfo | undefined {
  if (session.state !== "ACTIVE") return undefined;
  if (!desktop?.console) return external;
  return {
    protocol: "vnc",
    ...desktop.console,
    state: desktop.connectedSessionId === session.sessionId ? "READY" : "PREPARING",
  };
}

/** How long a screenshot request waits for the desktop's host to answer. */
const screenshotWaitMs = 10_000;

/**
 * The screen of a session's desktop, as a PNG. The host that runs the VM takes it (a job on its
 * queue) and leaves it in the table, where this request waits for it.
 */
export async function sessionScreenshot(
  ports: Pick<Ports, "sessions" | "desktops" | "jobs" | "screenshots" | "clock">,
  tenantId: string,
  sessionId: string,
): Promise<Buffer> {
  const session = await ports.sessions.get(tenantId, sessionId);
  if (!session) throw notFound("session", sessionId);
  const desktop = await ports.desktops.get(tenantId, session.poolId, session.desktopId);
  if (session.state !== "ACTIVE" || desktop?.sessionId !== sessionId)
    throw new DomainError(
      "sessionNotActive",
      `session ${sessionId} has ended: its desktop's screen is not its own`,
    );
  if (!desktop.console)
    throw new DomainError(
      "noScreen",
      `desktop ${desktop.desktopId} runs elsewhere: its screen is not served here`,
    );
  const requestId = randomUUID();
  await ports.jobs.send([{ kind: "screenshot", ...desktopRef(desktop), sessionId, requestId }]);
  const deadline = Date.now() + screenshotWaitMs;
  for (let wait = 25; Date.now() < deadline; wait = Math.min(250, wait * 2)) {
    const png = await ports.screenshots.get(tenantId, requestId);
    if (png) return png;
    await new Promise((r) => setTimeout(r, wait));
  }
  throw new DomainError(
    "desktopNotReady",
    `the host of desktop ${desktop.desktopId} did not answer in time`,
    {
      retryAfterSeconds: 2,
    },
  );
}
