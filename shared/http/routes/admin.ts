/** The operator's routes: tenants and datastores. */

import { describeDatastores, registerDatastore } from "../../domain/datastores.ts";
import { rebalanceDatastore } from "../../domain/rebalance.ts";
import { createTenant } from "../../domain/tenants.ts";
import * as r from "../responses.ts";
import { type ApiRoute, json, route } from "../route.ts";
import * as s from "../schemas.ts";

export const adminRoutes: ApiRoute[] = [
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
      json(200, {
        items: await describeDatastores(app.ports, app.config.defaultDatastore, app.config.worker),
      }),
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
];
