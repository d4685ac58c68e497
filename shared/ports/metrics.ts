import type { MetricName } from "../domain/metric-catalogue.ts";

/** Where the functions put their figures; recording never waits and never fails the work. */
export interface MetricRecorder {
  /** `poolId`: the series of a per-pool figure (metric-catalogue.ts `perPool`). */
  record(tenantId: string, name: MetricName, value: number, poolId?: string): void;
}

/** A stored step of a series: a tenant's figure, or a pool's for a per-pool figure. */
export interface MetricStep {
  name: MetricName;
  poolId?: string;
  bucket: number;
  count: number;
  sum: number;
}

/** The stored steps of a tenant's series (epoch-ms bucket starts). */
export interface MetricSeriesRepository {
  add(tenantId: string, name: MetricName, bucket: number, count: number, sum: number): Promise<void>;
  /** A per-pool gauge's step holds the latest value written in it (count 1, sum the value). */
  setGauge(tenantId: string, name: MetricName, poolId: string, bucket: number, value: number): Promise<void>;
  read(tenantId: string, fromBucket: number, toBucket: number): Promise<MetricStep[]>;
}
