import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
  UpdateCommand,
  type UpdateCommandInput,
} from "@aws-sdk/lib-dynamodb";
import type { EntityCodec, Item, Key } from "./entities.ts";
import { isConditionFailure, itemAtFailure } from "./errors.ts";
import { type WatchKind, watch } from "./keys.ts";
import { watchIndex } from "./table-schema.ts";

export type Table = ReturnType<typeof tableAccess>;

/** The reads and writes every repository of the single table shares. */
export function tableAccess(doc: DynamoDBDocumentClient, table: string) {
  const get = async <T>(codec: EntityCodec<T>, key: Key, consistent = true) => {
    const out = await doc.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: consistent }));
    return out.Item ? codec.fromItem(out.Item) : undefined;
  };

  /**
   * Items by key in one call (BatchGetItem, consistent reads), in the keys' order; undefined where
   * there is none. Keys DynamoDB leaves unprocessed are asked again.
   */
  const getMany = async (keys: Key[]): Promise<(Item | undefined)[]> => {
    const id = (k: Record<string, unknown>) => `${k.pk}\n${k.sk}`;
    const found = new Map<string, Item>();
    let pending: Key[] | undefined = keys;
    while (pending && pending.length > 0) {
      const out = await doc.send(
        new BatchGetCommand({ RequestItems: { [table]: { Keys: pending, ConsistentRead: true } } }),
      );
      for (const item of out.Responses?.[table] ?? []) found.set(id(item), item as Item);
      pending = out.UnprocessedKeys?.[table]?.Keys as Key[] | undefined;
    }
    return keys.map((k) => found.get(id(k)));
  };

  /** Every item of a query (all pages); with a codec, only its entity's items, decoded. */
  const queryItems = async (input: Omit<QueryCommandInput, "TableName">): Promise<Item[]> => {
    const items: Item[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await doc.send(new QueryCommand({ ...input, TableName: table, ExclusiveStartKey: start }));
      items.push(...(out.Items ?? []));
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  };

  /** How many items a query matches, counted by the table (none comes back; all pages). */
  const count = async (input: Omit<QueryCommandInput, "TableName" | "Select">): Promise<number> => {
    let n = 0;
    let start: Record<string, unknown> | undefined;
    do {
      const out = await doc.send(
        new QueryCommand({ ...input, TableName: table, Select: "COUNT", ExclusiveStartKey: start }),
      );
      n += out.Count ?? 0;
      start = out.LastEvaluatedKey;
    } while (start);
    return n;
  };

  const byPrefix = async <T>(codec: EntityCodec<T>, pk: string, prefix: string) =>
    (
      await queryItems({
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues: { ":pk": pk, ":prefix": prefix },
        ConsistentRead: true,
      })
    ).map((item) => codec.fromItem(item));

  /**
   * Items of one kind of the watch index (every shard), waiting since before `before` when given:
   * the reconciler's reads, queries and never a scan. The index is eventually consistent: callers
   * re-check what they act on.
   */
  const watching = async <T>(codec: EntityCodec<T>, kind: WatchKind, before?: string): Promise<T[]> => {
    const pages = await Promise.all(
      watch.partitions(kind).map((partition) =>
        queryItems({
          IndexName: watchIndex.name,
          KeyConditionExpression: before ? "#wpk = :wpk AND #wsk < :before" : "#wpk = :wpk",
          ExpressionAttributeNames: { "#wpk": watchIndex.pk, ...(before ? { "#wsk": watchIndex.sk } : {}) },
          ExpressionAttributeValues: { ":wpk": partition, ...(before ? { ":before": before } : {}) },
        }),
      ),
    );
    return pages.flat().map((item) => codec.fromItem(item));
  };

  /** A filtered scan of the whole table: for the reconciler's sweeps only, never a request path. */
  const scanAll = async <T>(
    codec: EntityCodec<T>,
    filter: string,
    values: Record<string, unknown>,
    names?: Record<string, string>,
  ): Promise<T[]> => {
    const found: T[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await doc.send(
        new ScanCommand({
          TableName: table,
          FilterExpression: `entity = :entity AND (${filter})`,
          ...(names ? { ExpressionAttributeNames: names } : {}),
          ExpressionAttributeValues: { ":entity": codec.name, ...values },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) found.push(codec.fromItem(item));
      start = out.LastEvaluatedKey;
    } while (start);
    return found;
  };

  /** Reads items by key, 100 at a time and consistently, retrying what DynamoDB leaves unprocessed. */
  const batchGet = async <T>(codec: EntityCodec<T>, keyList: Key[]): Promise<T[]> => {
    const found: T[] = [];
    for (let i = 0; i < keyList.length; i += 100) {
      let pending: Key[] | undefined = keyList.slice(i, i + 100);
      for (let attempt = 0; pending && pending.length > 0; attempt++) {
        if (attempt > 10) throw new Error("batch read kept returning unprocessed keys");
        if (attempt > 0) await new Promise((r) => setTimeout(r, 2 ** attempt * 10));
        const out = await doc.send(
          new BatchGetCommand({ RequestItems: { [table]: { Keys: pending, ConsistentRead: true } } }),
        );
        for (const item of out.Responses?.[table] ?? []) found.push(codec.fromItem(item));
        pending = out.UnprocessedKeys?.[table]?.Keys as Key[] | undefined;
      }
    }
    return found;
  };

  /** Writes items 25 at a time, retrying what DynamoDB leaves unprocessed. */
  const batchPut = async (items: Item[]) => {
    for (let i = 0; i < items.length; i += 25) {
      let pending: Item[] | undefined = items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
      for (let attempt = 0; pending && pending.length > 0; attempt++) {
        if (attempt > 10) throw new Error("batch write kept returning unprocessed items");
        if (attempt > 0) await new Promise((r) => setTimeout(r, 2 ** attempt * 10));
        const out = await doc.send(new BatchWriteCommand({ RequestItems: { [table]: pending as never } }));
        pending = out.UnprocessedItems?.[table] as Item[] | undefined;
      }
    }
  };

  /** An update that may find its condition false: answers whether it was applied. */
  const tryUpdate = async (input: Omit<UpdateCommandInput, "TableName">) => {
    try {
      await doc.send(new UpdateCommand({ ...input, TableName: table }));
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  };

  /** An update that may find its condition false: answers the item as written, or undefined. */
  const tryUpdateReturning = async <T>(
    codec: EntityCodec<T>,
    input: Omit<UpdateCommandInput, "TableName">,
  ) => {
    try {
      const out = await doc.send(new UpdateCommand({ ...input, TableName: table, ReturnValues: "ALL_NEW" }));
      return out.Attributes ? codec.fromItem(out.Attributes) : undefined;
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  };

  /** An unconditional put (an upsert). */
  const put = async (item: Item) => {
    await doc.send(new PutCommand({ TableName: table, Item: item }));
  };

  /**
   * A conditional put (by default: only if absent). Answers whether it was written and, when not,
   * the item that stood in its way.
   */
  const tryPut = async (
    item: Item,
    condition: { expression: string; values?: Record<string, unknown> } = {
      expression: "attribute_not_exists(pk)",
    },
  ): Promise<{ written: true } | { written: false; existing: Item | undefined }> => {
    try {
      await doc.send(
        new PutCommand({
          TableName: table,
          Item: item,
          ConditionExpression: condition.expression,
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
          ...(condition.values ? { ExpressionAttributeValues: condition.values } : {}),
        }),
      );
      return { written: true };
    } catch (err) {
      if (isConditionFailure(err)) return { written: false, existing: itemAtFailure(err) };
      throw err;
    }
  };

  /** Deletes an item; with a condition, answers whether it held (a missing item is no error). */
  const remove = async (key: Key, condition?: { expression: string; values: Record<string, unknown> }) => {
    try {
      await doc.send(
        new DeleteCommand({
          TableName: table,
          Key: key,
          ...(condition
            ? { ConditionExpression: condition.expression, ExpressionAttributeValues: condition.values }
            : {}),
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  };

  return {
    doc,
    name: table,
    get,
    getMany,
    queryItems,
    count,
    byPrefix,
    watching,
    scanAll,
    batchGet,
    batchPut,
    tryUpdate,
    tryUpdateReturning,
    put,
    tryPut,
    remove,
  };
}

/** `#k = :k` assignments for the defined fields, through placeholders (some names are reserved words). */
export function assignments(fields: Record<string, unknown>, prefix = "f") {
  const names: Record<string, string> = {};
  const values: Record<string, unknown> = {};
  const sets: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    names[`#${prefix}_${k}`] = k;
    values[`:${prefix}_${k}`] = v;
    sets.push(`#${prefix}_${k} = :${prefix}_${k}`);
  }
  return { sets, names, values };
}
