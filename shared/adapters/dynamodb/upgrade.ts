/**
 * Brings a table made by an earlier version up to table-schema.ts: the indexes it lacks are added
 * (one at a time, as DynamoDB allows), and the items a new watch index must hold get its keys. In
 * AWS the CDK stack adds the index; the backfill runs once after that deploy (docs/deploy.md).
 */
import { DescribeTableCommand, UpdateTableCommand } from "@aws-sdk/client-dynamodb";
import { type DynamoDBDocumentClient, ScanCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { type EntityCodec, entities, type Item } from "./entities.ts";
import { isConditionFailure } from "./errors.ts";
import { tableSchema, watchIndex } from "./table-schema.ts";

/** Entities that the watch index holds (some of their items), and the attribute their place follows. */
const watchedEntities: [EntityCodec<never>, string][] = [
  [entities.desktop as EntityCodec<never>, "state"],
  [entities.userLock as EntityCodec<never>, "sessionId"],
  [entities.imageVersion as EntityCodec<never>, "state"],
  [entities.pool as EntityCodec<never>, "poolId"],
];

export async function upgradeTable(
  doc: DynamoDBDocumentClient,
  tableName: string,
  opts: { timeoutMs?: number } = {},
): Promise<{ added: string[]; backfilled: number }> {
  const describe = async () => (await doc.send(new DescribeTableCommand({ TableName: tableName }))).Table;
  const present = new Set((await describe())?.GlobalSecondaryIndexes?.map((i) => i.IndexName));
  const missing = tableSchema.indexes.filter((i) => !present.has(i.name));
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const settled = async (what: string, ok: (t: Awaited<ReturnType<typeof describe>>) => boolean) => {
    while (!ok(await describe())) {
      if (Date.now() > deadline) throw new Error(`${tableName}: ${what} not done in time`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  for (const index of missing) {
    // A table (or a previous index) still being made takes no update.
    await settled("table ACTIVE", (t) => t?.TableStatus === "ACTIVE");
    await doc.send(
      new UpdateTableCommand({
        TableName: tableName,
        AttributeDefinitions: [index.partitionKey, index.sortKey].map((AttributeName) => ({
          AttributeName,
          AttributeType: "S",
        })),
        GlobalSecondaryIndexUpdates: [
          {
            Create: {
              IndexName: index.name,
              KeySchema: [
                { AttributeName: index.partitionKey, KeyType: "HASH" },
                { AttributeName: index.sortKey, KeyType: "RANGE" },
              ],
              Projection: { ProjectionType: "ALL" },
            },
          },
        ],
      }),
    );
    // The next index (and the backfill's queries) must wait for this one to be built.
    await settled(
      `index ${index.name}`,
      (t) =>
        t?.TableStatus === "ACTIVE" &&
        t.GlobalSecondaryIndexes?.find((i) => i.IndexName === index.name)?.IndexStatus === "ACTIVE",
    );
  }
  const backfilled = missing.some((i) => i.name === watchIndex.name)
    ? await backfillWatchIndex(doc, tableName)
    : 0;
  return { added: missing.map((i) => i.name), backfilled };
}

/**
 * Gives the items the watch index must hold its keys: a migration's one scan, never the
 * reconciler's. Each write is conditional on the item not having moved since it was read (its
 * state, or its lock's session), since live writers set the keys themselves from now on.
 */
export async function backfillWatchIndex(doc: DynamoDBDocumentClient, tableName: string): Promise<number> {
  let written = 0;
  let start: Record<string, unknown> | undefined;
  do {
    const page = await doc.send(
      new ScanCommand({
        TableName: tableName,
        FilterExpression: `entity IN (${watchedEntities.map((_, i) => `:e${i}`).join(", ")}) AND attribute_not_exists(#wpk)`,
        ExpressionAttributeNames: { "#wpk": watchIndex.pk },
        ExpressionAttributeValues: Object.fromEntries(
          watchedEntities.map(([codec], i) => [`:e${i}`, codec.name]),
        ),
        ExclusiveStartKey: start,
      }),
    );
    for (const item of page.Items ?? []) if (await backfillOne(doc, tableName, item)) written++;
    start = page.LastEvaluatedKey;
  } while (start);
  return written;
}

async function backfillOne(doc: DynamoDBDocumentClient, tableName: string, item: Item): Promise<boolean> {
  const found = watchedEntities.find(([codec]) => codec.is(item));
  if (!found) return false;
  const [codec, follows] = found;
  const attributes = codec.indexAttributes(codec.fromItem(item) as never);
  if (!attributes[watchIndex.pk]) return false;
  try {
    await doc.send(
      new UpdateCommand({
        TableName: tableName,
        Key: { pk: item.pk, sk: item.sk },
        UpdateExpression: "SET #wpk = :wpk, #wsk = :wsk",
        ConditionExpression: "#f = :f AND attribute_not_exists(#wpk)",
        ExpressionAttributeNames: { "#wpk": watchIndex.pk, "#wsk": watchIndex.sk, "#f": follows },
        ExpressionAttributeValues: {
          ":wpk": attributes[watchIndex.pk],
          ":wsk": attributes[watchIndex.sk],
          ":f": item[follows],
        },
      }),
    );
    return true;
  } catch (err) {
    if (isConditionFailure(err)) return false;
    throw err;
  }
}
