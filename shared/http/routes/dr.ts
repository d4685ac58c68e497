import { failback, failover } from "../../domain/dr.ts";
import { getDrill, startDrill } from "../../domain/drill.ts";
import { resolveFork } from "../../domain/fork-resolution.ts";
import { metricSeries } from "../../domain/metrics.ts";
import { readinessSettings, readinessStatus } from "../../domain/readiness.ts";
import { replicationStatus } from "../../domain/replication-status.ts";
import * as r from "../responses.ts";
import { type ApiRoute, json, route } from "../route.ts";
import * as s from "../schemas.ts";

export const drRoutes: ApiRoute[] = [
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
    responses: { 202: r.failoverResult },
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
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/dr/forks/{forkId}/resolve",
    summary:
      "Resolve a fork of a user's data: keep the current history (the fork is dropped) or the fork (its content becomes the user's next version)",
    responses: { 200: r.userDataFork, 202: r.userDataFork },
    params: { forkId: s.id },
    body: s.resolveForkBody,
    handle: async ({ app, tenantId, params, body }) => {
      const fork = await resolveFork(app.ports, tenantId, params.forkId, body.keep);
      return json(fork.state === "RESOLVED" ? 200 : 202, fork);
    },
  }),
];
