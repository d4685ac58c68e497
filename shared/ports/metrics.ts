import type { MetricName } from "../domain/metric-catalogue.ts";

/** Where the functions put their figures; recording never waits and never fails the work. */
export interface MetricRecorder {
  record(tenantId: string, name: MetricName, value: number): void;
}

/** The stored steps of a tenant's series (epoch-ms bucket starts). */
export interface MetricSeriesRepository {
  add(tenantId: string, name: MetricName, bucket: number, count: number, sum: number): Promise<void>;
  read(
    tenantId: string,
    fromBucket: number,
    toBucket: number,
  ): Promise<{ name: MetricName; bucket: number; count: number; sum: number }[]>;
}
