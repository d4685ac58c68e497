import {
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  type QueryCommandInput,
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

  return { get, queryAll, byPrefix };
}
