/** The API's route table (DESIGN.md §4): who may call each route, and the one domain call it makes. */
import type { App } from "../app.ts";
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
import type { Tenant } from "../domain/model.ts";
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
import type { ParsedRequest, Reply, Route } from "./router.ts";
import * as s from "./schemas.ts";

export type Access = "public" | "operator" | "tenant";
export interface Ctx {
  app: App;
  principal: Principal | undefined;
}
/** `replayable: false` for answers that carry a secret: an idempotency record would store it. */
export type ApiRoute = Route<Ctx> & { access: Access; replayable: boolean };

const json = (status: number, body: unknown, headers?: Record<string, string>): Reply => ({
  status,
  body,
  ...(headers ? { headers } : {}),
});

function tenantOf(ctx: Ctx): Tenant {
  if (ctx.principal?.kind !== "tenant") throw forbidden("this route needs a tenant API key");
  return ctx.principal.tenant;
}

const route = (
  access: Access,
  method: ApiRoute["method"],
  path: string,
  handle: (ctx: Ctx, req: ParsedRequest, tenantId: string) => Promise<Reply>,
  replayable = true,
): ApiRoute => ({
  access,
  method,
  path,
  replayable,
  handle: (ctx, req) => handle(ctx, req, access === "tenant" ? tenantOf(ctx).tenantId : ""),
});

export const routes: ApiRoute[] = [
  route("public", "GET", "/health", async () => json(200, { status: "ok" })),

  route(
    "operator",
    "POST",
    "/v1/admin/tenants",
    async ({ app }, req) => {
      const { tenant, apiKey } = await createTenant(app.ports, req.body(s.createTenantBody));
      return json(201, { ...tenant, apiKey });
    },
    false,
  ),

  route("operator", "POST", "/v1/admin/datastores", async ({ app }, req) => {
    const body = req.body(s.registerDatastoreBody);
    const { hostId, ...rest } = body;
    return json(201, await registerDatastore(app.ports, { ...rest, ...(hostId ? { hostId } : {}) }));
  }),
  route("operator", "GET", "/v1/admin/datastores", async ({ app }) =>
    json(200, { items: await listDatastores(app.ports, app.config.defaultDatastore) }),
  ),
  route("operator", "POST", "/v1/admin/datastores/{datastoreId}/rebalance", async ({ app }, req) => {
    const datastoreId = req.param("datastoreId", s.id);
    const body = req.body(s.rebalanceBody) ?? {};
    return json(202, await rebalanceDatastore(app.ports, app.config.defaultDatastore, datastoreId, body));
  }),

  route("tenant", "POST", "/v1/images", async ({ app }, req, t) =>
    json(201, await createImage(app.ports, t, req.body(s.createImageBody))),
  ),
  route("tenant", "GET", "/v1/images", async ({ app }, _req, t) =>
    json(200, { items: await listImages(app.ports, t) }),
  ),
  route("tenant", "GET", "/v1/images/{imageId}", async ({ app }, req, t) =>
    json(200, await getImage(app.ports, t, req.param("imageId", s.id))),
  ),
  route("tenant", "POST", "/v1/images/{imageId}/versions", async ({ app }, req, t) => {
    const imageId = req.param("imageId", s.id);
    const { source } = req.body(s.publishVersionBody);
    const version = await publishVersion(app.ports, t, imageId, source);
    return json(202, version, { location: `/v1/images/${imageId}` });
  }),

  route("tenant", "POST", "/v1/images/{imageId}/versions/{version}/retire", async ({ app }, req, t) => {
    const imageId = req.param("imageId", s.id);
    const n = req.param("version", s.versionNumber);
    req.body(s.emptyBody);
    return json(200, await retireVersion(app.ports, t, imageId, n));
  }),
  route("tenant", "DELETE", "/v1/images/{imageId}/versions/{version}", async ({ app }, req, t) => {
    await deleteVersion(app.ports, t, req.param("imageId", s.id), req.param("version", s.versionNumber));
    return json(204, undefined);
  }),

  route("tenant", "POST", "/v1/pools", async ({ app }, req, t) => {
    const body = req.body(s.createPoolBody);
    const pool = await createPool(app.ports, t, body, app.config.defaultDatastore);
    return json(201, pool, { location: `/v1/pools/${pool.poolId}` });
  }),
  route("tenant", "PATCH", "/v1/pools/{poolId}", async ({ app }, req, t) => {
    const poolId = req.param("poolId", s.id);
    const { size } = req.body(s.patchPoolBody);
    return json(200, await resizePool(app.ports, t, poolId, size, app.config.defaultDatastore));
  }),
  route("tenant", "POST", "/v1/pools/{poolId}/recompose", async ({ app }, req, t) =>
    json(202, await recomposePool(app.ports, t, req.param("poolId", s.id), req.body(s.recomposeBody))),
  ),
  route("tenant", "POST", "/v1/pools/{poolId}/recompose/rollback", async ({ app }, req, t) => {
    const poolId = req.param("poolId", s.id);
    return json(202, await rollbackRecompose(app.ports, t, poolId, req.body(s.rollbackBody) ?? {}));
  }),
  route("tenant", "GET", "/v1/storage", async ({ app }, _req, t) =>
    json(200, await storageReport(app.ports, t)),
  ),
  route("tenant", "GET", "/v1/pools", async ({ app }, _req, t) =>
    json(200, { items: await listPools(app.ports, t) }),
  ),
  route("tenant", "GET", "/v1/pools/{poolId}", async ({ app }, req, t) =>
    json(200, await describePool(app.ports, t, req.param("poolId", s.id))),
  ),
  route("tenant", "DELETE", "/v1/pools/{poolId}", async ({ app }, req, t) =>
    json(202, await deletePool(app.ports, t, req.param("poolId", s.id))),
  ),
  route("tenant", "GET", "/v1/pools/{poolId}/desktops", async ({ app }, req, t) =>
    json(200, { items: await listPoolDesktops(app.ports, t, req.param("poolId", s.id)) }),
  ),
  route("tenant", "POST", "/v1/pools/{poolId}/logons", async (ctx, req, t) => {
    const poolId = req.param("poolId", s.id);
    const { userId } = req.body(s.logonBody);
    assertServing(tenantOf(ctx));
    const { session, connection, reconnected, userData } = await logon(ctx.app.ports, t, poolId, userId);
    return json(200, { ...session, connection, reconnected, ...(userData ? { userData } : {}) });
  }),
  route("tenant", "GET", "/v1/sessions/{sessionId}", async ({ app }, req, t) =>
    json(200, await describeSession(app.ports, t, req.param("sessionId", s.sessionId))),
  ),
  route("tenant", "POST", "/v1/sessions/{sessionId}/logoff", async ({ app }, req, t) => {
    const sessionId = req.param("sessionId", s.sessionId);
    req.body(s.emptyBody);
    return json(200, await logoff(app.ports, t, sessionId, "api"));
  }),
  ...drRoutes(),
];

function drRoutes(): ApiRoute[] {
  return [
    route("tenant", "GET", "/v1/dr/replication", async ({ app }, _req, t) =>
      json(200, await replicationStatus(app.ports, t)),
    ),
    route("tenant", "POST", "/v1/dr/drills", async ({ app }, req, t) => {
      const drill = await startDrill(app.ports, t, req.body(s.startDrillBody));
      return json(202, drill, { location: `/v1/dr/drills/${drill.drillId}` });
    }),
    route("tenant", "GET", "/v1/dr/drills/{drillId}", async ({ app }, req, t) =>
      json(200, await getDrill(app.ports, t, req.param("drillId", s.id))),
    ),
    route("tenant", "POST", "/v1/dr/failover", async ({ app }, req, t) => {
      req.body(s.emptyBody);
      return json(202, await failover(app.ports, t, app.config.defaultDatastore));
    }),
    route("tenant", "POST", "/v1/dr/failback", async ({ app }, req, t) => {
      req.body(s.emptyBody);
      return json(202, await failback(app.ports, t));
    }),
  ];
}
