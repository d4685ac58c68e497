/** Logon, sessions and logoff. */

import type { App } from "../../app.ts";
import { sessionScreenshot } from "../../domain/connection.ts";
import { assertServing } from "../../domain/dr.ts";
import { logon } from "../../domain/logon.ts";
import { getTicket, type QueuedLogon } from "../../domain/logon-queue.ts";
import { logoff } from "../../domain/sessions.ts";
import { describeSession } from "../../domain/user-data.ts";
import * as r from "../responses.ts";
import { type ApiRoute, json, poolParams, route, sessionParams } from "../route.ts";
import * as s from "../schemas.ts";

const ticketAnswer = ({ ticket, position }: QueuedLogon) => ({ ...ticket, position });

/** A logon's figures: served, queued (counted where the ticket is made) or refused, and how long the answer took. */
async function measuredLogon<T extends object>(
  app: App,
  tenantId: string,
  run: () => Promise<T>,
): Promise<T> {
  const started = Date.now();
  try {
    const result = await run();
    if (!("ticket" in result)) app.ports.metrics.record(tenantId, "logonsServed", 1);
    return result;
  } catch (err) {
    app.ports.metrics.record(tenantId, "logonsRefused", 1);
    throw err;
  } finally {
    app.ports.metrics.record(tenantId, "logonLatencyMs", Date.now() - started);
  }
}

export const sessionRoutes: ApiRoute[] = [
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/pools/{poolId}/logons",
    summary:
      "Log a user on: a desktop and a one-time connection (a reconnect when the user has a session); in a self-sizing pool with none free, a ticket in line (202)",
    responses: { 200: r.logonResult, 202: r.logonTicket },
    params: poolParams,
    body: s.logonBody,
    // Its answer holds a one-time password, never to be stored; a retried logon reconnects anyway.
    replayable: false,
    handle: async ({ app, ctx, tenantId, params, body }) => {
      const result = await measuredLogon(app, tenantId, () => {
        if (ctx.principal?.kind === "tenant") assertServing(ctx.principal.tenant);
        return logon(app.ports, tenantId, params.poolId, body.userId);
      });
      if ("ticket" in result)
        return json(202, ticketAnswer(result), {
          location: `/v1/pools/${params.poolId}/logons/${result.ticket.ticketId}`,
        });
      const { session, connection, reconnected, userData } = result;
      return json(200, { ...session, connection, reconnected, ...(userData ? { userData } : {}) });
    },
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/pools/{poolId}/logons/{ticketId}",
    summary: "A queued logon's ticket: its place in line, and its session once served",
    responses: { 200: r.logonTicket },
    params: { ...poolParams, ticketId: s.id },
    handle: async ({ app, tenantId, params }) =>
      json(200, ticketAnswer(await getTicket(app.ports, tenantId, params.poolId, params.ticketId))),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/sessions/{sessionId}",
    summary: "A session with its user data and connection state",
    responses: { 200: r.sessionDescription },
    params: sessionParams,
    handle: async ({ app, tenantId, params }) =>
      json(200, await describeSession(app.ports, tenantId, params.sessionId)),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/sessions/{sessionId}/screenshot",
    summary: "The session's screen as a PNG",
    responses: { 200: { media: ["image/png"] } },
    params: sessionParams,
    handle: async ({ app, tenantId, params }) => ({
      status: 200,
      body: await sessionScreenshot(app.ports, tenantId, params.sessionId),
      headers: { "content-type": "image/png", "cache-control": "no-store" },
    }),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/sessions/{sessionId}/logoff",
    summary: "Log a session off; its desktop is refreshed",
    responses: { 200: r.session },
    params: sessionParams,
    body: s.emptyBody,
    handle: async ({ app, tenantId, params }) =>
      json(200, await logoff(app.ports, tenantId, params.sessionId, "api")),
  }),
];
