/** A pool's session timeouts: options of `pools create`, and `pools timeouts` to change them. */
import type { Command } from "commander";
import type { Pool } from "../../shared/domain/model.ts";
import * as s from "../../shared/http/schemas.ts";
import { integer, validBody, validId } from "../args.ts";
import { api, show } from "../context.ts";
import { UsageError } from "../errors.ts";
import { type Cell, printFields } from "../output.ts";

/** The options, the fields of `sessionTimeouts` they set, and what they mean. */
const options = [
  ["--disconnect-timeout <seconds>", "disconnectSeconds", "log off a session disconnected this long"],
  ["--idle-timeout <seconds>", "idleSeconds", "log off a session idle this long"],
  ["--max-session <seconds>", "maxLifetimeSeconds", "log off any session this old"],
  ["--timeout-warning <seconds>", "warningSeconds", "warn a session this long before a timeout (default 60)"],
] as const;

export interface TimeoutFlags {
  disconnectTimeout?: number | null;
  idleTimeout?: number | null;
  maxSession?: number | null;
  timeoutWarning?: number | null;
}

const flagOf = (option: string) =>
  option
    .slice(2, option.indexOf(" "))
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) as keyof TimeoutFlags;

/** `off` clears a timeout (`pools timeouts` only); anything else must be whole seconds. */
function secondsOrOff(value: string): number | null {
  if (value.trim() === "off") return null;
  return integer(value);
}

/** Adds the timeout options to a command; with `off`, each one may also clear its timeout. */
export function withTimeoutOptions(cmd: Command, off = false): Command {
  for (const [option, , about] of options)
    cmd.option(
      option,
      off ? `${about} (off: ${option.startsWith("--timeout-warning") ? "the default" : "never"})` : about,
      off ? secondsOrOff : integer,
    );
  return cmd;
}

/** The `sessionTimeouts` the flags give, or undefined when none is given. */
export function timeoutsFrom(f: TimeoutFlags): Record<string, number | null | undefined> | undefined {
  const given = options
    .map(([option, field]) => [field, f[flagOf(option)]] as const)
    .filter(([, v]) => v !== undefined);
  return given.length > 0 ? Object.fromEntries(given) : undefined;
}

export function timeoutFields(p: Pool): [string, Cell][] {
  const t = p.sessionTimeouts;
  if (!t) return [["session timeouts", "none"]];
  return options
    .filter(([, field]) => t[field] !== undefined)
    .map(([option, field]) => [option.slice(2, option.indexOf(" ")), `${t[field]} s`]);
}

export function poolTimeoutsCommand(pools: Command): void {
  withTimeoutOptions(
    pools
      .command("timeouts <poolId>")
      .description("change a pool's session timeouts (the ones not given are kept)"),
    true,
  ).action(async (poolId: string, f: TimeoutFlags, cmd: Command) => {
    validId(s.id, "pool", poolId);
    const sessionTimeouts = timeoutsFrom(f);
    if (!sessionTimeouts) throw new UsageError("give at least one timeout option");
    const body = validBody(s.patchPoolBody, { sessionTimeouts });
    const pool = await (await api(cmd)).json<Pool>("PATCH", `/v1/pools/${poolId}`, { body });
    show(cmd, pool, (p) => printFields([["poolId", p.poolId], ...timeoutFields(p)]));
  });
}
