/**
 * The API's route table (DESIGN.md §4): who may call each route, the schemas of its path and body,
 * and the one domain call it makes. Tests take the table as it is (fuzzing, tenant isolation), so
 * a new route is covered without editing them.
 */
import type { z } from "zod";
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
import {
  createPool,
  deletePool,
  describePool,
  listPoolDesktops,
  listPools,
  resizePool,
} from "../domain/pools.ts";
import { rebalanceDatastore } from "../domain/rebalance.ts";
import { recomposePool, rollbackRecompose } from "../domain/recompose.ts";
import { replicationStatus } from "../domain/replication-status.ts";
import { logoff } from "../domain/sessions.ts";
import { storageReport } from "../domain/storage.ts";
import { createTenant, type Principal } from "../domain/tenants.ts";
import { describeSession } from "../domain/user-data.ts";
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
};

interface Input<P extends Params, B> {
  params: { [K in keyof P]: z.infer<P[K]> };
  body: B;
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
>(spec: {
  access: Access;
  method: Method;
  path: string;
  params?: P;
  body?: B;
  replayable?: boolean;
  handle: (input: Input<P, B extends z.ZodType ? z.infer<B> : undefined>) => Promise<Reply>;
}): ApiRoute {
  const params = (spec.params ?? {}) as P;
  return {
    access: spec.access,
    method: spec.method,
    path: spec.path,
    replayable: spec.replayable ?? true,
    params,
    body: spec.body,
    handle: (ctx, req) => {
      if (spec.access === "tenant" && ctx.principal?.kind !== "tenant")
        throw forbidden("this route needs a tenant API key");
      const parsed = Object.fromEntries(
        Object.entries(params).map(([name, schema]) => [name, req.param(name, schema)]),
      );
      return spec.handle({
        params: parsed as Input<P, never>["params"],
        body: (spec.body ? req.body(spec.body) : undefined) as never,
        tenantId: ctx.principal?.kind === "tenant" ? ctx.principal.tenant.tenantId : "",
        ctx,
        app: ctx.app,
      });
    },
  };
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
    handle: async () => json(200, { status: "ok" }),
  }),
  // The web console (docs/console.md): static files, no data; the page calls the API with the user's key.
  route({
    access: "public",
    method: "GET",
    path: "/console",
    handle: () => serveAsset(consoleAssetDir(), "index.html"),
  }),
  route({
    access: "public",
    method: "GET",
    path: "/console/{asset}",
    params: { asset: s.assetName },
    handle: ({ params }) => serveAsset(consoleAssetDir(), params.asset),
  }),

  route({
    access: "operator",
    method: "POST",
    path: "/v1/admin/tenants",
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
    body: s.registerDatastoreBody,
    handle: async ({ app, body: { hostId, ...rest } }) =>
      json(201, await registerDatastore(app.ports, { ...rest, ...(hostId ? { hostId } : {}) })),
  }),
  route({
    access: "operator",
    method: "GET",
    path: "/v1/admin/datastores",
    handle: async ({ app }) =>
      json(200, { items: await listDatastores(app.ports, app.config.defaultDatastore) }),
  }),
  route({
    access: "operator",
    method: "POST",
    path: "/v1/admin/datastores/{datastoreId}/rebalance",
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
    body: s.createImageBody,
    handle: async ({ app, tenantId, body }) => json(201, await createImage(app.ports, tenantId, body)),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/images",
    handle: async ({ app, tenantId }) => json(200, { items: await listImages(app.ports, tenantId) }),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/images/{imageId}",
    params: imageParams,
    handle: async ({ app, tenantId, params }) =>
      json(200, await getImage(app.ports, tenantId, params.imageId)),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/images/{imageId}/versions",
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
    params: versionParams,
    body: s.emptyBody,
    handle: async ({ app, tenantId, params }) =>
      json(200, await retireVersion(app.ports, tenantId, params.imageId, params.version)),
  }),
  route({
    access: "tenant",
    method: "DELETE",
    path: "/v1/images/{imageId}/versions/{version}",
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
    handle: async ({ app, tenantId }) => json(200, { items: await listPools(app.ports, tenantId) }),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/pools/{poolId}",
    params: poolParams,
    handle: async ({ app, tenantId, params }) =>
      json(200, await describePool(app.ports, tenantId, params.poolId)),
  }),
  route({
    access: "tenant",
    method: "PATCH",
    path: "/v1/pools/{poolId}",
    params: poolParams,
    body: s.patchPoolBody,
    handle: async ({ app, tenantId, params, body }) =>
      json(200, await resizePool(app.ports, tenantId, params.poolId, body.size, app.config.defaultDatastore)),
  }),
  route({
    access: "tenant",
    method: "DELETE",
    path: "/v1/pools/{poolId}",
    params: poolParams,
    handle: async ({ app, tenantId, params }) =>
      json(202, await deletePool(app.ports, tenantId, params.poolId)),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/pools/{poolId}/desktops",
    params: poolParams,
    handle: async ({ app, tenantId, params }) =>
      json(200, { items: await listPoolDesktops(app.ports, tenantId, params.poolId) }),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/pools/{poolId}/recompose",
    params: poolParams,
    body: s.recomposeBody,
    handle: async ({ app, tenantId, params, body }) =>
      json(202, await recomposePool(app.ports, tenantId, params.poolId, body)),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/pools/{poolId}/recompose/rollback",
    params: poolParams,
    body: s.rollbackBody,
    handle: async ({ app, tenantId, params, body }) =>
      json(202, await rollbackRecompose(app.ports, tenantId, params.poolId, body ?? {})),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/pools/{poolId}/logons",
    params: poolParams,
    body: s.logonBody,
    // Its answer holds a one-time password, never to be stored; a retried logon reconnects anyway.
    replayable: false,
    handle: async ({ app, ctx, tenantId, params, body }) => {
      if (ctx.principal?.kind === "tenant") assertServing(ctx.principal.tenant);
      const { session, connection, reconnected, userData } = await logon(
        app.ports,
        tenantId,
        params.poolId,
        body.userId,
      );
      return json(200, { ...session, connection, reconnected, ...(userData ? { userData } : {}) });
    },
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/sessions/{sessionId}",
    params: sessionParams,
    handle: async ({ app, tenantId, params }) =>
      json(200, await describeSession(app.ports, tenantId, params.sessionId)),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/sessions/{sessionId}/screenshot",
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
    params: sessionParams,
    body: s.emptyBody,
    handle: async ({ app, tenantId, params }) =>
      json(200, await logoff(app.ports, tenantId, params.sessionId, "api")),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/storage",
    handle: async ({ app, tenantId }) => json(200, await storageReport(app.ports, tenantId)),
  }),

  route({
    access: "tenant",
    method: "GET",
    path: "/v1/dr/replication",
    handle: async ({ app, tenantId }) => json(200, await replicationStatus(app.ports, tenantId)),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/dr/drills",
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
    params: { drillId: s.id },
    handle: async ({ app, tenantId, params }) =>
      json(200, await getDrill(app.ports, tenantId, params.drillId)),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/dr/failover",
    body: s.emptyBody,
    handle: async ({ app, tenantId }) =>
      json(202, await failover(app.ports, tenantId, app.config.defaultDatastore)),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/dr/failback",
    body: s.emptyBody,
    handle: async ({ app, tenantId }) => json(202, await failback(app.ports, tenantId)),
  }),
];
