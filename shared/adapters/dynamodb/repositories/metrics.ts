import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { type MetricName, metricCatalogue } from "../../../domain/metric-catalogue.ts";
import type { MetricSeriesRepository, MetricStep } from "../../../ports/index.ts";
import { keys } from "../keys.ts";
import type { Table } from "../table.ts";

/** Steps older than this expire (table TTL). */
const keepSeconds = 8 * 24 * 3600;

/**
 * A tenant's series: one item per step and figure, added to atomically by every recorder; a
 * per-pool gauge's item per step and pool holds the latest value written (the last writer's).
 */
export function metricSeriesRepository(t: Table): MetricSeriesRepository {
  return {
    async add(tenantId, name, bucket, count, sum) {
      await t.doc.send(
        new UpdateCommand({
          TableName: t.name,
          Key: keys.metricStep(tenantId, new Date(bucket).toISOString(), name),
          UpdateExpression: "SET entity = :e, expiresAt = :x ADD #count :c, #sum :s",
          ExpressionAttributeNames: { "#count": "count", "#sum": "sum" },
          ExpressionAttributeValues: {
            ":e": "MetricStep",
            ":x": Math.floor(bucket / 1000) + keepSeconds,
            ":c": count,
            ":s": sum,
          },
        }),
      );
    },
    async setGauge(tenantId, name, poolId, bucket, value) {
      await t.doc.send(
        new UpdateCommand({
          TableName: t.name,
          Key: keys.metricStep(tenantId, new Date(bucket).toISOString(), name, poolId),
          UpdateExpression: "SET entity = :e, expiresAt = :x, #count = :c, #sum = :s",
          ExpressionAttributeNames: { "#count": "count", "#sum": "sum" },
          ExpressionAttributeValues: {
            ":e": "MetricStep",
            ":x": Math.floor(bucket / 1000) + keepSeconds,
            ":c": 1,
            ":s": value,
          },
        }),
      );
    },
    async read(tenantId, fromBucket, toBucket) {
      const items = await t.queryItems({
        KeyConditionExpression: "pk = :pk AND sk BETWEEN :from AND :to",
        ExpressionAttributeValues: {
          ":pk": keys.metricsPartition(tenantId),
          ":from": new Date(fromBucket).toISOString(),
          // "~" sorts after every "#<name>" of the last step.
          ":to": `${new Date(toBucket).toISOString()}~`,
        },
      });
      return items.flatMap((item): MetricStep[] => {
        const { bucketIso, name, poolId } = keys.parseMetricStep(String(item.sk));
        if (!(name in metricCatalogue)) return [];
        return [
          {
            name: name as MetricName,
            ...(poolId === undefined ? {} : { poolId }),
            bucket: Date.parse(bucketIso),
            count: Number(item.count),
            sum: Number(item.sum),
          },
        ];
      });
    },
  };
}
