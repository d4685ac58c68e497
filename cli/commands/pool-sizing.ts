/** How a pool sizes itself: options of `pools create`, `pools sizing` to change them, and tickets. */
import type { Command } from "commander";
import type { Pool } from "../../shared/domain/model.ts";
import type { LogonTicketAnswer } from "../../shared/http/responses.ts";
import * as s from "../../shared/http/schemas.ts";
import { integer, validBody, validId } from "../args.ts";
import { api, show } from "../context.ts";
import { UsageError } from "../errors.ts";
import { printFields } from "../output.ts";

/** The options, the pool fields they set, and what they mean. */
const options = [
  ["--min-size <n>", "minSize", "never fewer desktops than this (a pool that sizes itself)"],
  ["--max-size <n>", "maxSize", "never more: the pool sizes itself within it"],
  ["--spare <n>", "spare", "free desktops kept ready for the next logons"],
  ["--powered-on-spare <n>", "poweredOnSpare", "free desktops whose VMs keep running (the rest are STOPPED)"],
  ["--idle-seconds <n>", "idleSeconds", "free desktops beyond the spare ones go after this long free"],
  ["--ticket-timeout <seconds>", "ticketTimeoutSeconds", "a queued logon's ticket expires after this long"],
] as const;

export type SizingFlags = Partial<Record<(typeof options)[number][1], number>>;

const flagOf = (option: string) =>
  option.slice(2, option.indexOf(" ")).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

export function withSizingOptions(cmd: Command): Command {
  for (const [option, , about] of options) cmd.option(option, about, integer);
  return cmd;
}

/** The pool fields the flags give (none given: an empty object). */
export function sizingFrom(f: Record<string, unknown>): SizingFlags {
  return Object.fromEntries(
    options.map(([option, field]) => [field, f[flagOf(option)]]).filter(([, v]) => v !== undefined),
  ) as SizingFlags;
}

export function ticketFields(t: LogonTicketAnswer): void {
  printFields([
    ["ticketId", t.ticketId],
    ["user", t.userId],
    ["state", t.state],
    ["position", t.state === "WAITING" ? t.position : undefined],
    ["validUntil", t.validUntil],
    ["sessionId", t.sessionId],
  ]);
}

export function poolSizingCommands(pools: Command): void {
  withSizingOptions(
    pools.command("sizing <poolId>").description("change how a pool sizes itself (see pools create)"),
  ).action(async (poolId: string, f: Record<string, unknown>, cmd: Command) => {
    validId(s.id, "pool", poolId);
    const sizing = sizingFrom(f);
    if (Object.keys(sizing).length === 0) throw new UsageError("give at least one of the sizing options");
    const body = validBody(s.patchPoolBody, sizing);
    const client = await api(cmd);
    show(cmd, await client.json<Pool>("PATCH", `/v1/pools/${poolId}`, { body }), (p) =>
      printFields(options.map(([, field]) => [field, p[field]] as [string, number | undefined])),
    );
  });
  pools
    .command("ticket <poolId> <ticketId>")
    .description("a queued logon: its place in line, its session once served")
    .action(async (poolId: string, ticketId: string, _f: unknown, cmd: Command) => {
      validId(s.id, "pool", poolId);
      validId(s.id, "ticket", ticketId);
      const client = await api(cmd);
      show(
        cmd,
        await client.json<LogonTicketAnswer>("GET", `/v1/pools/${poolId}/logons/${ticketId}`),
        ticketFields,
      );
    });
}
