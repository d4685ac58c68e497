/** A tenant's figures as time series (GET /v1/metrics), and timing helpers for those who record. */
import type { Ports } from "../ports/index.ts";
import { type MetricName, metricCatalogue, metricNames, metricStepSeconds } from "./metric-catalogue.ts";

/** A step's figures: how many observations, and their sum (a mean is sum / count). */
export interface MetricPoint {
  t: string;
  count: number;
  sum: number;
}

/** GET /v1/metrics: every series of the catalogue over the last `minutes`, each step present. */
export async function metricSeries(
  ports: Pick<Ports, "metricSeries" | "clock">,
  tenantId: string,
  minutes: number,
) {
  const step = metricStepSeconds * 1000;
  const to = Math.floor(ports.clock.now().getTime() / step) * step;
  const from = to - minutes * 60_000 + step;
  const stored = await ports.metricSeries.read(tenantId, from, to);
  const at = new Map(stored.map((p) => [`${p.name}@${p.bucket}`, p]));
  return {
    stepSeconds: metricStepSeconds,
    from: new Date(from).toISOString(),
    to: new Date(to + step).toISOString(),
    series: metricNames.map((name) => ({
      name,
      unit: metricCatalogue[name].unit,
      points: Array.from({ length: Math.round((to - from) / step) + 1 }, (_, i): MetricPoint => {
        const bucket = from + i * step;
        const p = at.get(`${name}@${bucket}`);
        return { t: new Date(bucket).toISOString(), count: p?.count ?? 0, sum: p?.sum ?? 0 };
      }),
    })),
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
