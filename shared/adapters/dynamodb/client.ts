import {
  CreateTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { tableSchema } from "./table-schema.ts";
import { markWatchBackfilled, upgradeTable } from "./upgrade.ts";

export function dynamoClient(endpoint?: string, region?: string): DynamoDBClient {
  return new DynamoDBClient({ ...(endpoint ? { endpoint } : {}), ...(region ? { region } : {}) });
}

export function documentClient(endpoint?: string | DynamoDBClient, region?: string): DynamoDBDocumentClient {
  const client = endpoint instanceof DynamoDBClient ? endpoint : dynamoClient(endpoint, region);
  return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}

/**
 * Creates the table from the shared schema (local runtime and tests; in AWS, CDK owns it); a table
 * made by an earlier version gets the indexes it lacks (upgrade.ts).
 */
export async function ensureTable(doc: DynamoDBDocumentClient, tableName: string): Promise<void> {
  const s = tableSchema;
  const attributes = new Set([
    s.partitionKey,
    s.sortKey,
    ...s.indexes.flatMap((i) => [i.partitionKey, i.sortKey]),
  ]);
  try {
    await doc.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: "PAY_PER_REQUEST",
        AttributeDefinitions: [...attributes].map((AttributeName) => ({ AttributeName, AttributeType: "S" })),
        KeySchema: [
          { AttributeName: s.partitionKey, KeyType: "HASH" },
          { AttributeName: s.sortKey, KeyType: "RANGE" },
        ],
        GlobalSecondaryIndexes: s.indexes.map((i) => ({
          IndexName: i.name,
          KeySchema: [
            { AttributeName: i.partitionKey, KeyType: "HASH" },
            { AttributeName: i.sortKey, KeyType: "RANGE" },
          ],
          Projection: { ProjectionType: "ALL" },
        })),
      }),
    );
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) throw err;
    await upgradeTable(doc, tableName);
    return;
  }
  await doc.send(
    new UpdateTimeToLiveCommand({
      TableName: tableName,
      TimeToLiveSpecification: { AttributeName: s.ttlAttribute, Enabled: true },
    }),
  );
  // A new table's writers set every watch key: it needs no backfill.
  await markWatchBackfilled(doc, tableName);
}
