/**
 * The API's route table (DESIGN.md §4): who may call each route, the schemas of its path and body,
 * and the one domain call it makes. Tests take the table as it is (fuzzing, tenant isolation), so
 * a new route is covered without editing them.
 */
import { z } from "zod";
import type { App } from "../app.ts";
import { sessionScreenshot } from "../domain/connection.ts";
import { listDatastores, registerDatastore } from "../domain/datastores.ts";
import { assertServing, failback, failover } from "../domain/dr.ts";
import { getDrill, startDrill } from "../domain/drill.ts";
import { forbidden } from "../domain/errors.ts";
import {
  createImage,
  deleteVersion,
  getImage,
  listImages,
  publishVersion,
  retireVersion,
} from "../domain/images.ts";
import { logon } from "../domain/logon.ts";
import { metricSeries } from "../domain/metrics.ts";
import {
  createPool,
  deletePoolEverywhere,
  describePool,
  listPoolDesktops,
  listPools,
  resizePool,
} from "../domain/pools.ts";
import { readinessSettings, readinessStatus } from "../domain/readiness.ts";
import { rebalanceDatastore } from "../domain/rebalance.ts";
import { recomposePool, rollbackRecompose } from "../domain/recompose.ts";
import { replicationStatus } from "../domain/replication-status.ts";
import { logoff } from "../domain/sessions.ts";
import { storageReport } from "../domain/storage.ts";
import { createTenant, type Principal } from "../domain/tenants.ts";
import { describeSession } from "../domain/user-data.ts";
import { type Answer, openApiDocument } from "./openapi.ts";
import * as r from "./responses.ts";
import type { Method, Reply, Route } from "./router.ts";
import * as s from "./schemas.ts";
import { consoleAssetDir, serveAsset } from "./static-assets.ts";

export type Access = "public" | "operator" | "tenant";
export interface Ctx {
  app: App;
  principal: Principal | undefined;
}

type Params = Record<string, z.ZodType>;

export type ApiRoute = Route<Ctx> & {
  access: Access;
  /** `false` for answers that carry a secret: an idempotency record would store it. */
  replayable: boolean;
  /** The path parameters' schemas, by name. */
  params: Params;
  /** The body's schema; undefined for routes that take none. */
  body: z.ZodType | undefined;
  /** The query string's schema (an object of optional strings); undefined for routes that take none. */
  query: z.ZodObject | undefined;
  summary: string;
  responses: Record<number, Answer>;
};

interface Input<P extends Params, B, Q> {
  params: { [K in keyof P]: z.infer<P[K]> };
  body: B;
  query: Q;
  /** The caller's tenant on tenant routes ("" elsewhere). */
  tenantId: string;
  ctx: Ctx;
  app: App;
}

const json = (status: number, body: unknown, headers?: Record<string, string>): Reply => ({
  status,
  body,
  ...(headers ? { headers } : {}),
});

function route<
  P extends Params = Record<never, z.ZodType>,
  B extends z.ZodType | undefined = undefined,
  Q extends z.ZodObject | undefined = undefined,
>(spec: {
  access: Access;
  method: Method;
  path: string;
  params?: P;
  body?: B;
  query?: Q;
  replayable?: boolean;
  summary: string;
  responses: Record<number, Answer>;
  handle: (
    input: Input<
      P,
      B extends z.ZodType ? z.infer<B> : undefined,
      Q extends z.ZodType ? z.infer<Q> : undefined
    >,
  ) => Promise<Reply>;
}): ApiRoute {
  const params = (spec.params ?? {}) as P;
  return {
    access: spec.access,
    method: spec.method,
    path: spec.path,
    replayable: spec.replayable ?? true,
    params,
    body: spec.body,
    query: spec.query,
    summary: spec.summary,
    responses: spec.responses,
    handle: (ctx, req) => {
      if (spec.access === "tenant" && ctx.principal?.kind !== "tenant")
        throw forbidden("this route needs a tenant API key");
      const parsed = Object.fromEntries(
        Object.entries(params).map(([name, schema]) => [name, req.param(name, schema)]),
      );
      return spec.handle({
        params: parsed as Input<P, never, never>["params"],
        body: (spec.body ? req.body(spec.body) : undefined) as never,
        query: (spec.query ? req.query(spec.query) : undefined) as never,
        tenantId: ctx.principal?.kind === "tenant" ? ctx.principal.tenant.tenantId : "",
        ctx,
        app: ctx.app,
      });
    },
  };
}

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

const poolParams = { poolId: s.id };
const imageParams = { imageId: s.id };
const versionParams = { imageId: s.id, version: s.versionNumber };
const sessionParams = { sessionId: s.sessionId };

export const routes: ApiRoute[] = [
  route({
    access: "public",
    method: "GET",
    path: "/health",
    summary: "The API answers",
    responses: { 200: r.health },
    handle: async () => json(200, { status: "ok" }),
  }),
  // The web console (docs/console.md): static files, no data; the page calls the API with the user's key.
  route({
    access: "public",
    method: "GET",
    path: "/console",
    summary: "The web console's page (it calls this API with the key its user types)",
    responses: { 200: { media: ["text/html"] } },
    handle: () => serveAsset(consoleAssetDir(), "index.html"),
  }),
  route({
    access: "public",
    method: "GET",
    path: "/console/{asset}",
    params: { asset: s.assetName },
    summary: "The web console's scripts, styles and source maps",
    responses: { 200: { media: ["text/javascript", "text/css", "application/json"] } },
    handle: ({ params }) => serveAsset(consoleAssetDir(), params.asset),
  }),

  route({
    access: "public",
    method: "GET",
    path: "/v1/openapi.json",
    summary: "This API's OpenAPI 3.1 document",
    responses: { 200: z.looseObject({ openapi: z.literal("3.1.0") }) },
    handle: async () => json(200, apiDocument()),
  }),

  route({
    access: "operator",
    method: "POST",
    path: "/v1/admin/tenants",
    summary: "Create a tenant; its API key is shown once",
    responses: { 201: r.createdTenant },
    body: s.createTenantBody,
    replayable: false,
    handle: async ({ app, body }) => {
      const { tenant, apiKey } = await createTenant(app.ports, body);
      return json(201, { ...tenant, apiKey });
    },
  }),
  route({
    access: "operator",
    method: "POST",
    path: "/v1/admin/datastores",
    summary: "Register a datastore (and the host that runs its desktops)",
    responses: { 201: r.datastore },
    body: s.registerDatastoreBody,
    handle: async ({ app, body: { hostId, ...rest } }) =>
      json(201, await registerDatastore(app.ports, { ...rest, ...(hostId ? { hostId } : {}) })),
  }),
  route({
    access: "operator",
    method: "GET",
    path: "/v1/admin/datastores",
    summary: "The region's datastores with their reserved bytes",
    responses: { 200: r.items(r.datastoreUsage) },
    handle: async ({ app }) =>
      json(200, { items: await listDatastores(app.ports, app.config.defaultDatastore) }),
  }),
  route({
    access: "operator",
    method: "POST",
    path: "/v1/admin/datastores/{datastoreId}/rebalance",
    summary: "Move free desktops off a datastore above a threshold",
    responses: { 202: r.rebalanceResult },
    params: { datastoreId: s.id },
    body: s.rebalanceBody,
    handle: async ({ app, params, body }) =>
      json(
        202,
        await rebalanceDatastore(app.ports, app.config.defaultDatastore, params.datastoreId, body ?? {}),
      ),
  }),

  route({
    access: "tenant",
    method: "POST",
    path: "/v1/images",
    summary: "Create an image (a name for its versions)",
    responses: { 201: r.image },
    body: s.createImageBody,
    handle: async ({ app, tenantId, body }) => json(201, await createImage(app.ports, tenantId, body)),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/images",
    summary: "The tenant's images",
    responses: { 200: r.items(r.image) },
    handle: async ({ app, tenantId }) => json(200, { items: await listImages(app.ports, tenantId) }),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/images/{imageId}",
    summary: "An image with its versions",
    responses: { 200: r.imageWithVersions },
    params: imageParams,
    handle: async ({ app, tenantId, params }) =>
      json(200, await getImage(app.ports, tenantId, params.imageId)),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/images/{imageId}/versions",
    summary:
      "Publish a version from a qcow2 in the tenant's import folder or a blank disk; PUBLISHING until imported",
    responses: { 202: r.imageVersion },
    params: imageParams,
    body: s.publishVersionBody,
    handle: async ({ app, tenantId, params, body }) => {
      const version = await publishVersion(app.ports, tenantId, params.imageId, body.source);
      return json(202, version, { location: `/v1/images/${params.imageId}` });
    },
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/images/{imageId}/versions/{version}/retire",
    summary: "Retire a version: no new desktop is made from it",
    responses: { 200: r.imageVersion },
    params: versionParams,
    body: s.emptyBody,
    handle: async ({ app, tenantId, params }) =>
      json(200, await retireVersion(app.ports, tenantId, params.imageId, params.version)),
  }),
  route({
    access: "tenant",
    method: "DELETE",
    path: "/v1/images/{imageId}/versions/{version}",
    summary: "Delete a version no desktop uses",
    responses: { 204: "no-body" },
    params: versionParams,
    handle: async ({ app, tenantId, params }) => {
      await deleteVersion(app.ports, tenantId, params.imageId, params.version);
      return json(204, undefined);
    },
  }),

  route({
    access: "tenant",
    method: "POST",
    path: "/v1/pools",
    summary: "Create a pool of desktops on an image version",
    responses: { 201: r.pool },
    body: s.createPoolBody,
    handle: async ({ app, tenantId, body }) => {
      const pool = await createPool(app.ports, tenantId, body, app.config.defaultDatastore);
      return json(201, pool, { location: `/v1/pools/${pool.poolId}` });
    },
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/pools",
    summary: "The tenant's pools",
    responses: { 200: r.items(r.pool) },
    handle: async ({ app, tenantId }) => json(200, { items: await listPools(app.ports, tenantId) }),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/pools/{poolId}",
    summary: "A pool with its desktops counted by state and its recompose progress",
    responses: { 200: r.poolDescription },
    params: poolParams,
    handle: async ({ app, tenantId, params }) =>
      json(200, await describePool(app.ports, tenantId, params.poolId)),
  }),
  route({
    access: "tenant",
    method: "PATCH",
    path: "/v1/pools/{poolId}",
    summary: "Resize a pool",
    responses: { 200: r.pool },
    params: poolParams,
    body: s.patchPoolBody,
    handle: async ({ app, tenantId, params, body }) =>
      json(200, await resizePool(app.ports, tenantId, params.poolId, body.size, app.config.defaultDatastore)),
  }),
  route({
    access: "tenant",
    method: "DELETE",
    path: "/v1/pools/{poolId}",
    summary: "Drain and delete a pool",
    responses: { 202: r.pool },
    params: poolParams,
    handle: async ({ app, tenantId, params }) =>
      json(202, await deletePoolEverywhere(app.ports, tenantId, params.poolId)),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/pools/{poolId}/desktops",
    summary: "A pool's desktops with their delta sizes",
    responses: { 200: r.items(r.desktopWithDelta) },
    params: poolParams,
    handle: async ({ app, tenantId, params }) =>
      json(200, { items: await listPoolDesktops(app.ports, tenantId, params.poolId) }),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/pools/{poolId}/recompose",
    summary: "Move a pool onto another image version",
    responses: { 202: r.poolDescription },
    params: poolParams,
    body: s.recomposeBody,
    handle: async ({ app, tenantId, params, body }) =>
      json(202, await recomposePool(app.ports, tenantId, params.poolId, body)),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/pools/{poolId}/recompose/rollback",
    summary: "Move a pool back to the version it was recomposed from",
    responses: { 202: r.poolDescription },
    params: poolParams,
    body: s.rollbackBody,
    handle: async ({ app, tenantId, params, body }) =>
      json(202, await rollbackRecompose(app.ports, tenantId, params.poolId, body ?? {})),
  }),
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
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/storage",
    summary: "The tenant's space: used, provisioned and the full-clone equivalent",
    responses: { 200: r.storageReport },
    handle: async ({ app, tenantId }) => json(200, await storageReport(app.ports, tenantId)),
  }),

  route({
    access: "tenant",
    method: "GET",
    path: "/v1/metrics",
    summary:
      "The tenant's figures (logons, latency, provisioning, refresh, boot, replication lag) as time series",
    query: s.metricsQuery,
    responses: { 200: r.metricSeries },
    handle: async ({ app, tenantId, query }) =>
      json(200, await metricSeries(app.ports, tenantId, query.minutes)),
  }),

  route({
    access: "tenant",
    method: "GET",
    path: "/v1/dr/replication",
    summary: "This region's user-data replication to its peer and the tenant's DR state",
    responses: { 200: r.replicationStatus },
    handle: async ({ app, tenantId }) => json(200, await replicationStatus(app.ports, tenantId)),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/dr/readiness",
    summary:
      "The latest DR readiness check (users' data, image versions and pools in DR, checked without desktops) and the RPO now",
    responses: { 200: r.readinessStatus },
    handle: async ({ app, tenantId }) =>
      json(200, await readinessStatus(app.ports, tenantId, readinessSettings(app.config.timing))),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/dr/drills",
    summary: "Start a DR drill in this region on replicated pools",
    responses: { 202: r.drill },
    body: s.startDrillBody,
    handle: async ({ app, tenantId, body }) => {
      const drill = await startDrill(app.ports, tenantId, body);
      return json(202, drill, { location: `/v1/dr/drills/${drill.drillId}` });
    },
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/dr/drills/{drillId}",
    summary: "A drill's report",
    responses: { 200: r.drill },
    params: { drillId: s.id },
    handle: async ({ app, tenantId, params }) =>
      json(200, await getDrill(app.ports, tenantId, params.drillId)),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/dr/failover",
    summary: "Fail the tenant over to this region",
    responses: { 202: r.drState },
    body: s.emptyBody,
    handle: async ({ app, tenantId }) =>
      json(202, await failover(app.ports, tenantId, app.config.defaultDatastore)),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/dr/failback",
    summary: "Hand the tenant back to its primary region",
    responses: { 202: r.drState },
    body: s.emptyBody,
    handle: async ({ app, tenantId }) => json(202, await failback(app.ports, tenantId)),
  }),
];

let document: ReturnType<typeof openApiDocument> | undefined;
/** Made once per process, from the table above. */
export function apiDocument() {
  document ??= openApiDocument(routes, "1");
  return document;
}
