/** Sessions: logon, logoff, read one, its desktop's screen. */
import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import type { ConnectionInfo, Session } from "../../shared/domain/model.ts";
import type { LogonTicketAnswer } from "../../shared/http/responses.ts";
import * as s from "../../shared/http/schemas.ts";
import { validBody, validId } from "../args.ts";
import { api, show } from "../context.ts";
import { printFields, printLine } from "../output.ts";
import { ticketFields } from "./pool-sizing.ts";

type SessionView = Session & {
  connection?: ConnectionInfo;
  reconnected?: boolean;
  userData?: { state: string; version?: number };
};

function connectionText(c: ConnectionInfo | undefined): string | undefined {
  if (!c) return undefined;
  if (c.protocol === "external") return c.detail;
  const ws = c.websocketPort ? `, websocket ${c.websocketPort}` : "";
  return `vnc ${c.host}:${c.port}${ws} (${c.state})`;
}

function sessionFields(v: SessionView): void {
  const password = v.connection?.protocol === "vnc" ? v.connection.password : undefined;
  printFields([
    ["sessionId", v.sessionId],
    ["state", v.state],
    ["user", v.userId],
    ["pool", v.poolId],
    ["desktop", v.desktopId],
    ["connection", connectionText(v.connection)],
    ...(password ? ([["password", password]] as [string, string][]) : []),
    ...(v.reconnected !== undefined ? ([["reconnected", v.reconnected]] as [string, boolean][]) : []),
    [
      "userData",
      v.userData
        ? `${v.userData.state}${v.userData.version !== undefined ? ` v${v.userData.version}` : ""}`
        : undefined,
    ],
    ["startedAt", v.startedAt],
    ["endedAt", v.endedAt],
    ["endedBy", v.endedBy],
  ]);
}

export function sessionCommands(program: Command): void {
  program
    .command("logon <poolId> <userId>")
    .description("log a user on to a pool: a desktop and how to connect (a repeated logon reconnects)")
    .action(async (poolId: string, userId: string, _f: unknown, cmd: Command) => {
      validId(s.id, "pool", poolId);
      const body = validBody(s.logonBody, { userId });
      const client = await api(cmd);
      const answer = await client.json<SessionView | LogonTicketAnswer>(
        "POST",
        `/v1/pools/${poolId}/logons`,
        {
          body,
        },
      );
      // A self-sizing pool with none free answers with a ticket in line (pools ticket follows it).
      if ("ticketId" in answer) show(cmd, answer, ticketFields);
      else show(cmd, answer, sessionFields);
    });
  program
    .command("logoff <sessionId>")
    .description("end a session (again is fine)")
    .action(async (sessionId: string, _f: unknown, cmd: Command) => {
      validId(s.sessionId, "session", sessionId);
      const client = await api(cmd);
      show(
        cmd,
        await client.json<SessionView>("POST", `/v1/sessions/${sessionId}/logoff`, { body: {} }),
        sessionFields,
      );
    });

  const sessions = program.command("sessions").description("sessions");
  sessions
    .command("get <sessionId>")
    .description("a session: state, connection, user data")
    .action(async (sessionId: string, _f: unknown, cmd: Command) => {
      validId(s.sessionId, "session", sessionId);
      const client = await api(cmd);
      show(cmd, await client.json<SessionView>("GET", `/v1/sessions/${sessionId}`), sessionFields);
    });
  sessions
    .command("screenshot <sessionId>")
    .description("the session's screen as a PNG file")
    .option("-o, --output <file>", "where to write it", "screenshot.png")
    .action(async (sessionId: string, f: { output: string }, cmd: Command) => {
      validId(s.sessionId, "session", sessionId);
      const client = await api(cmd);
      const png = await client.bytes(`/v1/sessions/${sessionId}/screenshot`);
      await writeFile(f.output, png);
      show(cmd, { sessionId, file: f.output, bytes: png.length }, (r) =>
        printLine(`${r.file}: ${r.bytes} bytes, the screen of session ${r.sessionId}`),
      );
    });
}
