/**
 * Brings a table made by an earlier version up to table-schema.ts: the indexes it lacks are added
 * (one at a time, as DynamoDB allows), and the items a new watch index must hold get its keys, as
 * do items of the kinds the index came to hold later (a marker item says which backfills a table
 * has had). In AWS the CDK stack adds the index; the backfill runs once after such a deploy
 * (docs/deploy.md).
 */
import { DescribeTableCommand, UpdateTableCommand } from "@aws-sdk/client-dynamodb";
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  ScanCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { type EntityCodec, entities, type Item } from "./entities.ts";
import { isConditionFailure } from "./errors.ts";
import { keys } from "./keys.ts";
import { tableSchema, watchIndex } from "./table-schema.ts";

/**
 * Entities that the watch index holds (some of their items), the attributes their place follows,
 * and the backfill that first gave them its keys (1: with the index; 2: users' data behind
 * replication).
 */
const watchedEntities: { codec: EntityCodec<never>; follows: string[]; backfill: number }[] = [
  { codec: entities.desktop as EntityCodec<never>, follows: ["state"], backfill: 1 },
  { codec: entities.userLock as EntityCodec<never>, follows: ["sessionId"], backfill: 1 },
  { codec: entities.imageVersion as EntityCodec<never>, follows: ["state"], backfill: 1 },
  { codec: entities.pool as EntityCodec<never>, follows: ["poolId"], backfill: 1 },
  { codec: entities.userData as EntityCodec<never>, follows: ["version", "replicatedVersion"], backfill: 2 },
];

/** The latest backfill: a table that has had it needs none (its live writers set the keys). */
export const watchBackfill = Math.max(...watchedEntities.map((e) => e.backfill));

/** Which backfills the table has had (0: none; a table with the index but no marker: the first). */
async function backfillsDone(doc: DynamoDBDocumentClient, tableName: string, hadIndex: boolean) {
  const out = await doc.send(
    new GetCommand({ TableName: tableName, Key: keys.schemaMarker, ConsistentRead: true }),
  );
  return out.Item ? Number(out.Item.watchBackfill) : hadIndex ? 1 : 0;
}

/** Notes that the table has had every backfill (a new table: its writers set every key). */
export async function markWatchBackfilled(doc: DynamoDBDocumentClient, tableName: string) {
  await doc.send(
    new PutCommand({
      TableName: tableName,
      Item: { ...keys.schemaMarker, entity: "schemaMarker", watchBackfill },
    }),
  );
}

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
  const done = await backfillsDone(doc, tableName, !missing.some((i) => i.name === watchIndex.name));
  let backfilled = 0;
  if (done < watchBackfill) {
    backfilled = await backfillWatchIndex(doc, tableName, done);
    await markWatchBackfilled(doc, tableName);
  }
  return { added: missing.map((i) => i.name), backfilled };
}

/**
 * Gives the items the watch index must hold its keys (of the entities backfills after `after`
 * added): a migration's one scan, never the reconciler's. Each write is conditional on the item
 * not having moved since it was read (its state, its lock's session, its data's versions), since
 * live writers set the keys themselves from now on.
 */
export async function backfillWatchIndex(
  doc: DynamoDBDocumentClient,
  tableName: string,
  after = 0,
): Promise<number> {
  const watched = watchedEntities.filter((e) => e.backfill > after);
  if (watched.length === 0) return 0;
  let written = 0;
  let start: Record<string, unknown> | undefined;
  do {
    const page = await doc.send(
      new ScanCommand({
        TableName: tableName,
        FilterExpression: `entity IN (${watched.map((_, i) => `:e${i}`).join(", ")}) AND attribute_not_exists(#wpk)`,
        ExpressionAttributeNames: { "#wpk": watchIndex.pk },
        ExpressionAttributeValues: Object.fromEntries(watched.map(({ codec }, i) => [`:e${i}`, codec.name])),
        ExclusiveStartKey: start,
      }),
    );
    for (const item of page.Items ?? []) if (await backfillOne(doc, tableName, watched, item)) written++;
    start = page.LastEvaluatedKey;
  } while (start);
  return written;
}

async function backfillOne(
  doc: DynamoDBDocumentClient,
  tableName: string,
  watched: typeof watchedEntities,
  item: Item,
): Promise<boolean> {
  const found = watched.find(({ codec }) => codec.is(item));
  if (!found) return false;
  const { codec, follows } = found;
  const attributes = codec.indexAttributes(codec.fromItem(item) as never);
  if (!attributes[watchIndex.pk]) return false;
  const unmoved = follows.map((f, i) =>
    item[f] === undefined ? `attribute_not_exists(#f${i})` : `#f${i} = :f${i}`,
  );
  try {
    await doc.send(
      new UpdateCommand({
        TableName: tableName,
        Key: { pk: item.pk, sk: item.sk },
        UpdateExpression: "SET #wpk = :wpk, #wsk = :wsk",
        ConditionExpression: `${unmoved.join(" AND ")} AND attribute_not_exists(#wpk)`,
        ExpressionAttributeNames: {
          "#wpk": watchIndex.pk,
          "#wsk": watchIndex.sk,
          ...Object.fromEntries(follows.map((f, i) => [`#f${i}`, f])),
        },
        ExpressionAttributeValues: {
          ":wpk": attributes[watchIndex.pk],
          ":wsk": attributes[watchIndex.sk],
          ...Object.fromEntries(
            follows.flatMap((f, i) => (item[f] === undefined ? [] : [[`:f${i}`, item[f]]])),
          ),
        },
      }),
    );
    return true;
  } catch (err) {
    if (isConditionFailure(err)) return false;
    throw err;
  }
}
