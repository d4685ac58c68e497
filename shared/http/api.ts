import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import httpHeaderNormalizer from "@middy/http-header-normalizer";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { flushMetrics } from "../adapters/metrics/recorder.ts";
import type { App } from "../app.ts";
import { forbidden } from "../domain/errors.ts";
import { authenticate, type Principal } from "../domain/tenants.ts";
import { logger } from "../logger.ts";
import { idempotentWrites } from "./idempotency.ts";
import { errorToResponse, HttpProblem, problem } from "./problem.ts";
import { createRouter, type Reply } from "./router.ts";
import { type ApiRoute, type Ctx, routes } from "./routes.ts";

/** Keys are checked on every request; a short cache spares DynamoDB a read per call (like an authorizer cache). */
function principalCache(app: App, ttlMs = app.config.timing.keyCacheMs ?? 60_000) {
  const cache = new Map<string, { principal: Principal; until: number }>();
  return async (authorization: string | undefined): Promise<Principal> => {
    const hit = authorization ? cache.get(authorization) : undefined;
    if (hit && hit.until > Date.now()) return hit.principal;
    const principal = await authenticate(app.ports, app.config.operatorKeySha256, authorization);
    if (authorization) {
      if (cache.size > 10_000) cache.clear();
      cache.set(authorization, { principal, until: Date.now() + ttlMs });
    }
    return principal;
  };
}

/** The API Lambda: API Gateway HTTP API (payload v2) in, JSON or problem+json out. */
export function apiHandler(app: App) {
  const resolve = createRouter<Ctx>(routes);
  const principalFor = principalCache(app);
  const idempotent = idempotentWrites(app.dynamodb, app.config.tableName);

  const base = async (
    event: APIGatewayProxyEventV2,
    context: Context,
  ): Promise<APIGatewayProxyStructuredResultV2> => {
    const { route, request } = resolve(event);
    const hit = route as ApiRoute;
    // Every log line of this request names what it is about (ids only, never keys or bodies).
    logger.appendKeys({ route: `${hit.method} ${hit.path}`, ...request.params });
    let principal: Principal | undefined;
    if (hit.access !== "public") {
      principal = await principalFor(request.headers.authorization);
      logger.appendKeys({
        principal: principal.kind,
        ...(principal.kind === "tenant" ? { tenantId: principal.tenant.tenantId } : {}),
      });
      if (hit.access === "operator" && principal.kind !== "operator")
        throw forbidden("this route needs the operator key");
    }
    const run = () => hit.handle({ app, principal }, request);
    const key = request.headers["idempotency-key"];
    if (key === undefined || hit.method === "GET" || !hit.replayable) return toResponse(await run());
    if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
      throw new HttpProblem(
        problem("validation", "headers.idempotency-key: 1 to 255 visible ASCII characters", {
          field: "headers.idempotency-key",
        }),
      );
    }
    idempotent.registerLambdaContext(context);
    const scope = principal?.kind === "tenant" ? principal.tenant.tenantId : (principal?.kind ?? "public");
    return toResponse(
      await idempotent(
        { scope, method: hit.method, path: event.rawPath, key, body: request.rawBody ?? "" },
        run,
      ),
    );
  };

  return middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(httpHeaderNormalizer())
    .use(flushMetrics(app.metrics))
    .use({
      onError: async (request) => {
        const { response, unexpected } = errorToResponse(request.error);
        if (unexpected)
          logger.error("unhandled error", { path: request.event.rawPath, error: request.error as Error });
        request.response = response;
      },
    })
    .handler(base);
}

/** JSON by default; a Buffer body (an image) goes out base64-encoded, as API Gateway wants it. */
const toResponse = (reply: Reply): APIGatewayProxyStructuredResultV2 =>
  Buffer.isBuffer(reply.body)
    ? {
        statusCode: reply.status,
        headers: { ...reply.headers },
        body: reply.body.toString("base64"),
        isBase64Encoded: true,
      }
    : {
        statusCode: reply.status,
        headers: { "content-type": "application/json", ...reply.headers },
        body: reply.body === undefined ? "" : JSON.stringify(reply.body),
      };
