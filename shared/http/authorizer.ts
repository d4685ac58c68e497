import type {
  APIGatewayRequestAuthorizerEventV2,
  APIGatewaySimpleAuthorizerWithContextResult,
} from "aws-lambda";
import type { App } from "../app.ts";
import { DomainError } from "../domain/errors.ts";
import { authenticate } from "../domain/tenants.ts";

export type AuthorizerContext = { principal: "operator" | "tenant"; tenantId: string };

/**
 * API Gateway's Lambda authorizer (simple responses): it only authenticates. Which routes a
 * principal may use stays in the api handler, because the gateway caches this answer per key
 * across all routes.
 */
export function authorizerHandler(app: App) {
  return async (
    event: APIGatewayRequestAuthorizerEventV2,
  ): Promise<APIGatewaySimpleAuthorizerWithContextResult<AuthorizerContext>> => {
    const header = event.headers?.authorization ?? event.identitySource?.[0];
    try {
      const principal = await authenticate(app.ports, app.config.operatorKeySha256, header);
      return {
        isAuthorized: true,
        context:
          principal.kind === "operator"
            ? { principal: "operator", tenantId: "" }
            : { principal: "tenant", tenantId: principal.tenant.tenantId },
      };
    } catch (err) {
      if (err instanceof DomainError)
        return { isAuthorized: false, context: { principal: "tenant", tenantId: "" } };
      throw err;
    }
  };
}
