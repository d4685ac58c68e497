/** Per-tenant quotas: the operator sets them, the tenant sees them with its usage. */

import { operatorTenantQuotas, setTenantQuotas, tenantQuotas } from "../../domain/quotas.ts";
import * as r from "../responses.ts";
import { type ApiRoute, json, quotaDefaults, route } from "../route.ts";
import * as s from "../schemas.ts";

export const quotaRoutes: ApiRoute[] = [
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/quotas",
    summary: "The tenant's quotas and what it uses of them",
    responses: { 200: r.tenantQuotas },
    handle: async ({ app, tenantId }) =>
      json(200, await tenantQuotas(app.ports, quotaDefaults(app), tenantId)),
  }),
  route({
    access: "operator",
    method: "GET",
    path: "/v1/admin/tenants/{tenantId}/quotas",
    summary: "A tenant's quotas and usage",
    responses: { 200: r.tenantQuotas },
    params: { tenantId: s.id },
    handle: async ({ app, params }) =>
      json(200, await operatorTenantQuotas(app.ports, quotaDefaults(app), params.tenantId)),
  }),
  route({
    access: "operator",
    method: "PUT",
    path: "/v1/admin/tenants/{tenantId}/quotas",
    summary: "Set a tenant's quotas (those left out follow the region's defaults)",
    responses: { 200: r.tenantQuotas },
    params: { tenantId: s.id },
    body: s.putQuotasBody,
    handle: async ({ app, params, body }) =>
      json(200, await setTenantQuotas(app.ports, quotaDefaults(app), params.tenantId, body)),
  }),
];
