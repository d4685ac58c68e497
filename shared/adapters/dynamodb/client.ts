import { CreateTableCommand, DynamoDBClient, ResourceInUseException } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { freeIndex } from "./keys.ts";

export function dynamoClient(endpoint?: string, region?: string): DynamoDBClient {
  return new DynamoDBClient({ ...(endpoint ? { endpoint } : {}), ...(region ? { region } : {}) });
}

export function documentClient(endpoint?: string | DynamoDBClient, region?: string): DynamoDBDocumentClient {
  const client = endpoint instanceof DynamoDBClient ? endpoint : dynamoClient(endpoint, region);
  return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}

/** Creates the table as the CDK stack defines it (local runtime and tests; in AWS, CDK owns it). */
export async function ensureTable(doc: DynamoDBDocumentClient, tableName: string): Promise<void> {
  try {
    await doc.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: "PAY_PER_REQUEST",
        AttributeDefinitions: [
          { AttributeName: "pk", AttributeType: "S" },
          { AttributeName: "sk", AttributeType: "S" },
          { AttributeName: freeIndex.pk, AttributeType: "S" },
          { AttributeName: freeIndex.sk, AttributeType: "S" },
        ],
        KeySchema: [
          { AttributeName: "pk", KeyType: "HASH" },
          { AttributeName: "sk", KeyType: "RANGE" },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: freeIndex.name,
            KeySchema: [
              { AttributeName: freeIndex.pk, KeyType: "HASH" },
              { AttributeName: freeIndex.sk, KeyType: "RANGE" },
            ],
            Projection: { ProjectionType: "ALL" },
          },
        ],
      }),
    );
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) throw err;
  }
}
