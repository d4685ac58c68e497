/** A tenant's figures as time series (GET /v1/metrics), and timing helpers for those who record. */
import type { Ports } from "../ports/index.ts";
import {
  isPerPool,
  type MetricName,
  metricCatalogue,
  metricNames,
  metricStepSeconds,
} from "./metric-catalogue.ts";
import type { Desktop } from "./model.ts";

/** A step's figures: how many observations, and their sum (a mean is sum / count). */
export interface MetricPoint {
  t: string;
  count: number;
  sum: number;
}

/**
 * GET /v1/metrics: every series of the catalogue over the last `minutes`, each step present; a
 * per-pool figure has one series per pool that recorded it in the window.
 */
export async function metricSeries(
  ports: Pick<Ports, "metricSeries" | "clock">,
  tenantId: string,
  minutes: number,
) {
  const step = metricStepSeconds * 1000;
  const to = Math.floor(ports.clock.now().getTime() / step) * step;
  const from = to - minutes * 60_000 + step;
  const stored = await ports.metricSeries.read(tenantId, from, to);
  const keyOf = (name: string, poolId: string | undefined, bucket: number) =>
    `${name}@${poolId ?? ""}@${bucket}`;
  const at = new Map(stored.map((p) => [keyOf(p.name, p.poolId, p.bucket), p]));
  const poolsOf = (name: MetricName) =>
    [...new Set(stored.flatMap((p) => (p.name === name && p.poolId ? [p.poolId] : [])))].sort();
  const seriesOf = (name: MetricName, poolId?: string) => ({
    name,
    ...(poolId === undefined ? {} : { poolId }),
    unit: metricCatalogue[name].unit,
    points: Array.from({ length: Math.round((to - from) / step) + 1 }, (_, i): MetricPoint => {
      const bucket = from + i * step;
      const p = at.get(keyOf(name, poolId, bucket));
      return { t: new Date(bucket).toISOString(), count: p?.count ?? 0, sum: p?.sum ?? 0 };
    }),
  });
  return {
    stepSeconds: metricStepSeconds,
    from: new Date(from).toISOString(),
    to: new Date(to + step).toISOString(),
    series: metricNames.flatMap((name) =>
      isPerPool(name) ? poolsOf(name).map((poolId) => seriesOf(name, poolId)) : [seriesOf(name)],
    ),
  };
}

/** Records the time a piece of work took (ms since `startedAt`), for one tenant. */
export function recordSince(
  ports: Pick<Ports, "metrics" | "clock">,
  tenantId: string,
  name: MetricName,
  startedAt: string | number,
) {
  const ms =
    ports.clock.now().getTime() - (typeof startedAt === "number" ? startedAt : Date.parse(startedAt));
  if (!Number.isFinite(ms) || ms < 0) return;
  ports.metrics.record(tenantId, name, metricCatalogue[name].unit === "Seconds" ? ms / 1000 : ms);
}

/**
 * A pool's gauges, from a listing of its desktops the caller made anyway: its free desktops
 * (AVAILABLE or STOPPED) and those of them whose VM runs (AVAILABLE; a STOPPED one is powered off).
 */
export function recordPoolGauges(
  ports: Pick<Ports, "metrics">,
  pool: { tenantId: string; poolId: string },
  desktops: Pick<Desktop, "state">[],
) {
  const on = desktops.filter((d) => d.state === "AVAILABLE").length;
  const free = on + desktops.filter((d) => d.state === "STOPPED").length;
  ports.metrics.record(pool.tenantId, "freeDesktops", free, pool.poolId);
  ports.metrics.record(pool.tenantId, "poweredOnFreeDesktops", on, pool.poolId);
}
