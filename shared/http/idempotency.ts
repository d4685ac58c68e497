import {
  IdempotencyAlreadyInProgressError,
  IdempotencyConfig,
  IdempotencyValidationError,
  makeIdempotent,
} from "@aws-lambda-powertools/idempotency";
import { DynamoDBPersistenceLayer } from "@aws-lambda-powertools/idempotency/dynamodb";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { Context } from "aws-lambda";
import { tableSchema } from "../adapters/dynamodb/table-schema.ts";
import { HttpProblem, problem } from "./problem.ts";
import type { Reply } from "./router.ts";

export interface IdempotentRequest {
  /** Who asked: the same key from two tenants names two different requests. */
  scope: string;
  method: string;
  path: string;
  key: string;
  body: string;
}

/**
 * `Idempotency-Key` on a write: the first request runs, a retry with the same key gets the first
 * answer (for 24 h), the same key with another body is refused. Powertools keeps the records in
 * the region's table, under their own partition.
 */
export function idempotentWrites(client: DynamoDBClient, tableName: string) {
  const persistenceStore = new DynamoDBPersistenceLayer({
    tableName,
    keyAttr: tableSchema.partitionKey,
    sortKeyAttr: tableSchema.sortKey,
    staticPkValue: "IDEMPOTENCY",
    expiryAttr: tableSchema.ttlAttribute,
    awsSdkV3Client: client,
  });
  const config = new IdempotencyConfig({
    eventKeyJmesPath: "[scope, method, path, key]",
    payloadValidationJmesPath: "body",
    expiresAfterSeconds: 24 * 3600,
  });
  const once = makeIdempotent(async (_request: IdempotentRequest, run: () => Promise<Reply>) => run(), {
    persistenceStore,
    config,
  });
  const runOnce = async (request: IdempotentRequest, run: () => Promise<Reply>): Promise<Reply> => {
    try {
      return await once(request, run);
    } catch (err) {
      if (err instanceof IdempotencyAlreadyInProgressError) {
        throw new HttpProblem(
          problem("requestInProgress", `a request with Idempotency-Key ${request.key} is still running`),
          { "retry-after": "1" },
        );
      }
      if (err instanceof IdempotencyValidationError) {
        throw new HttpProblem(
          problem(
            "idempotencyKeyReused",
            `Idempotency-Key ${request.key} was already used with another body`,
            {
              field: "headers.idempotency-key",
            },
          ),
        );
      }
      throw err;
    }
  };
  // The utility stops waiting for a request's record when the Lambda would time out anyway.
  return Object.assign(runOnce, {
    registerLambdaContext: (context: Context) => config.registerLambdaContext(context),
  });
}
