import { ScanCommand } from "@aws-sdk/lib-dynamodb";
import type { Region } from "../../local/region.ts";
import { documentClient } from "../../shared/adapters/dynamodb/client.ts";

/**
 * Every item of the region's table, in key order, as one string: equal strings, unchanged table.
 * `exceptFiguresOf`: that tenant's metric steps are left out (a refused request is counted for
 * the caller, by design); the figures recorded so far are written first.
 */
export async function tableSnapshot(
  region: Region,
  opts: { exceptFiguresOf?: string } = {},
): Promise<string> {
  if (opts.exceptFiguresOf) await region.app.metrics.flush();
  const doc = documentClient(region.app.dynamodb);
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await doc.send(
      new ScanCommand({
        TableName: region.app.config.tableName,
        ConsistentRead: true,
        ExclusiveStartKey: start,
      }),
    );
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
  } while (start);
  const key = (i: Record<string, unknown>) => `${i.pk}\u0000${i.sk}`;
  const figures = opts.exceptFiguresOf && `TENANT#${opts.exceptFiguresOf}#METRICS`;
  return JSON.stringify(items.filter((i) => i.pk !== figures).sort((a, b) => (key(a) < key(b) ? -1 : 1)));
}
