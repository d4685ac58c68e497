import { randomBytes } from "node:crypto";

/** Short, URL-safe, prefixed ids: the prefix tells an operator what an id names. */
export function newId(prefix: "ten" | "img" | "pool" | "dsk" | "ses"): string {
  return `${prefix}-${randomBytes(9).toString("base64url").replace(/[-_]/g, "x").toLowerCase()}`;
}
