/**
 * How a route of the API is declared: who may call it, the schemas of its path, query and body,
 * its answers (for the OpenAPI document) and the one domain call it makes.
 */

import type { z } from "zod";
import type { App } from "../app.ts";
import { forbidden } from "../domain/errors.ts";
import { defaultQuotas } from "../domain/quotas.ts";
import type { Principal } from "../domain/tenants.ts";
import type { Answer } from "./openapi.ts";
import type { Method, Reply, Route } from "./router.ts";
import * as s from "./schemas.ts";

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

export const json = (status: number, body: unknown, headers?: Record<string, string>): Reply => ({
  status,
  body,
  ...(headers ? { headers } : {}),
});

export function route<
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

export const poolParams = { poolId: s.id };
export const imageParams = { imageId: s.id };
export const versionParams = { imageId: s.id, version: s.versionNumber };
export const sessionParams = { sessionId: s.sessionId };

/** Each tenant's quotas unless the operator set its own. */
export const quotaDefaults = (app: App) => app.config.quotas ?? defaultQuotas;
