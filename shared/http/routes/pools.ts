/** Pools, their desktops, recompose and storage. */

import { requirePool } from "../../domain/common.ts";
import { changeSizing } from "../../domain/pool-sizer.ts";
import {
  createPool,
  deletePoolEverywhere,
  describePool,
  listPoolDesktops,
  listPools,
} from "../../domain/pools.ts";
import { recomposePool, rollbackRecompose } from "../../domain/recompose.ts";
import { setSessionTimeouts } from "../../domain/session-timeouts.ts";
import { storageReport } from "../../domain/storage.ts";
import * as r from "../responses.ts";
import { type ApiRoute, json, poolParams, quotaDefaults, route } from "../route.ts";
import * as s from "../schemas.ts";

export const poolRoutes: ApiRoute[] = [
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/pools",
    summary: "Create a pool of desktops on an image version",
    responses: { 201: r.pool },
    body: s.createPoolBody,
    handle: async ({ app, tenantId, body }) => {
      const pool = await createPool(
        app.ports,
        tenantId,
        body,
        app.config.defaultDatastore,
        quotaDefaults(app),
      );
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
    summary:
      "Resize a pool (size: a fixed pool), set how it sizes itself (minSize, maxSize, spare, poweredOnSpare, idleSeconds, ticketTimeoutSeconds), or change its session timeouts",
    responses: { 200: r.pool },
    params: poolParams,
    body: s.patchPoolBody,
    handle: async ({ app, tenantId, params, body }) => {
      const { sessionTimeouts, ...sizing } = body;
      let pool = Object.values(sizing).some((v) => v !== undefined)
        ? await changeSizing(
            app.ports,
            tenantId,
            params.poolId,
            sizing,
            app.config.defaultDatastore,
            quotaDefaults(app),
          )
        : undefined;
      if (sessionTimeouts)
        pool = await setSessionTimeouts(app.ports, tenantId, params.poolId, sessionTimeouts);
      return json(200, pool ?? (await requirePool(app.ports, tenantId, params.poolId)));
    },
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
    method: "GET",
    path: "/v1/storage",
    summary: "The tenant's space: used, provisioned and the full-clone equivalent",
    responses: { 200: r.storageReport },
    handle: async ({ app, tenantId }) => json(200, await storageReport(app.ports, tenantId)),
  }),
];
