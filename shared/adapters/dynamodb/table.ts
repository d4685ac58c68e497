import {
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
} from "@aws-sdk/lib-dynamodb";
import { fromItem } from "./keys.ts";

/** The reads every repository of the single table shares. */
export function tableReads(doc: DynamoDBDocumentClient, table: string) {
  const get = async <T>(key: { pk: string; sk: string }, consistent = false) => {
    const out = await doc.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: consistent }));
    return out.Item ? fromItem<T>(out.Item) : undefined;
  };

  const queryAll = async <T>(input: Omit<QueryCommandInput, "TableName">): Promise<T[]> => {
    const items: T[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await doc.send(new QueryCommand({ ...input, TableName: table, ExclusiveStartKey: start }));
      for (const item of out.Items ?? []) items.push(fromItem<T>(item));
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  };

  const byPrefix = <T>(pk: string, prefix: string) =>
    queryAll<T>({
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
      ExpressionAttributeValues: { ":pk": pk, ":prefix": prefix },
      ConsistentRead: true,
    });

  /** A filtered scan of the whole table: for the reconciler's sweeps only, never a request path. */
  const scanAll = async <T>(
    filter: string,
    values: Record<string, unknown>,
    names: Record<string, string> = { "#state": "state" },
  ): Promise<T[]> => {
    const found: T[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await doc.send(
        new ScanCommand({
          TableName: table,
          FilterExpression: filter,
          ...(filter.includes("#") ? { ExpressionAttributeNames: names } : {}),
          ExpressionAttributeValues: values,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) found.push(fromItem<T>(item));
      start = out.LastEvaluatedKey;
    } while (start);
    return found;
  };

  return { get, queryAll, byPrefix, scanAll };
}
