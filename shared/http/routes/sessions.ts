/** Logon, sessions and logoff. */

import type { App } from "../../app.ts";
import { sessionScreenshot } from "../../domain/connection.ts";
import { assertServing } from "../../domain/dr.ts";
import { logon } from "../../domain/logon.ts";
import { logoff } from "../../domain/sessions.ts";
import { describeSession } from "../../domain/user-data.ts";
import * as r from "../responses.ts";
import { type ApiRoute, json, poolParams, route, sessionParams } from "../route.ts";
import * as s from "../schemas.ts";

/** A logon's figures: served or refused, and how long the answer took. */
async function measuredLogon<T>(app: App, tenantId: string, run: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    const result = await run();
    app.ports.metrics.record(tenantId, "logonsServed", 1);
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
    summary: "Log a user on: a desktop and a one-time connection (a reconnect when the user has a session)",
    responses: { 200: r.logonResult },
    params: poolParams,
    body: s.logonBody,
    // Its answer holds a one-time password, never to be stored; a retried logon reconnects anyway.
    replayable: false,
    handle: async ({ app, ctx, tenantId, params, body }) => {
      const { session, connection, reconnected, userData } = await measuredLogon(app, tenantId, () => {
        if (ctx.principal?.kind === "tenant") assertServing(ctx.principal.tenant);
        return logon(app.ports, tenantId, params.poolId, body.userId);
      });
      return json(200, { ...session, connection, reconnected, ...(userData ? { userData } : {}) });
    },
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
