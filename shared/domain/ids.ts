import { randomBytes } from "node:crypto";

const token = () => randomBytes(9).toString("base64url").replace(/[-_]/g, "x").toLowerCase();

/** Short, URL-safe, prefixed ids: the prefix tells an operator what an id names. */
export function newId(prefix: "ten" | "img" | "pool" | "dsk" | "drl"): string {
  return `${prefix}-${token()}`;
}

/**
 * A session id names its desktop (`ses-<token>.<poolId>.<desktopId>`), so reading or ending a
 * session is one consistent read of the desktop, and a logon writes no separate session record.
 */
export function newSessionId(poolId: string, desktopId: string): string {
  return `ses-${token()}.${poolId}.${desktopId}`;
}

export function parseSessionId(sessionId: string): { poolId: string; desktopId: string } | undefined {
  const [ses, poolId, desktopId, ...rest] = sessionId.split(".");
  if (!ses?.startsWith("ses-") || !poolId || !desktopId || rest.length > 0) return undefined;
  return { poolId, desktopId };
}
