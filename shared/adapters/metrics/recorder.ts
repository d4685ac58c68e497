/**
 * The metric recorder of a process: figures are summed in memory per tenant, figure and step and
 * written a few at a time (the table's series, read by GET /v1/metrics), and the same figures go
 * to CloudWatch in the embedded metric format (Powertools Metrics) where that is on. A per-pool
 * gauge keeps its latest value per pool and step, and goes to CloudWatch at once with its `poolId`
 * dimension.
 */
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { type MetricName, metricCatalogue, metricStepSeconds } from "../../domain/metric-catalogue.ts";
import { logger } from "../../logger.ts";
import type { MetricRecorder, MetricSeriesRepository } from "../../ports/index.ts";

export interface FlushingRecorder extends MetricRecorder {
  /** Writes what was recorded so far. */
  flush(): Promise<void>;
  /** Called as an invocation ends: a Lambda (no background timer) writes its figures then. */
  invocationEnded(): Promise<void>;
  /** Stops the background flush (a local process that stops). */
  close(): Promise<void>;
}

const step = metricStepSeconds * 1000;

interface Step {
  tenantId: string;
  name: MetricName;
  poolId?: string | undefined;
  bucket: number;
  count: number;
  sum: number;
}

export function metricRecorder(
  series: MetricSeriesRepository,
  /** flushEveryMs: a long-lived process writes in the background; without it, at each invocation's end. */
  opts: { serviceName: string; flushEveryMs?: number; now?: () => number },
): FlushingRecorder {
  const now = opts.now ?? Date.now;
  // POWERTOOLS_METRICS_DISABLED=true turns the EMF lines off (the local runtime does).
  const emf = new Metrics({ namespace: "Pristine", serviceName: opts.serviceName });
  // Handed to Powertools only as they are written, in the flush's own context: where a process
  // runs invocations at once (AWS_LAMBDA_MAX_CONCURRENCY, the local runtime and the host agent),
  // Powertools keeps each invocation's metrics apart, and a background flush would find none.
  let emfValues: [MetricName, number][] = [];
  let pending = new Map<string, Step>();
  let flushing: Promise<void> = Promise.resolve();

  const writeOut = async () => {
    const batch = pending;
    pending = new Map();
    const failed = [];
    for (const p of batch.values()) {
      try {
        if (p.poolId === undefined) await series.add(p.tenantId, p.name, p.bucket, p.count, p.sum);
        else await series.setGauge(p.tenantId, p.name, p.poolId, p.bucket, p.sum);
      } catch (err) {
        failed.push(p);
        logger.warn("metric step not written; kept for the next flush", {
          error: err as Error,
          metric: p.name,
        });
      }
    }
    // A gauge recorded again meanwhile keeps its newer value.
    for (const p of failed) if (p.poolId === undefined || !pending.has(keyOf(p))) merge(p);
    if (emfValues.length > 0) {
      const values = emfValues;
      emfValues = [];
      for (const [name, value] of values) emf.addMetric(name, MetricUnit[metricCatalogue[name].unit], value);
      emf.publishStoredMetrics();
    }
  };
  const keyOf = (p: Step) => `${p.tenantId}|${p.name}|${p.poolId ?? ""}|${p.bucket}`;
  const merge = (p: Step) => {
    const key = keyOf(p);
    const at = pending.get(key);
    if (at && p.poolId !== undefined) {
      // A gauge: its latest value stands for the step.
      at.sum = p.sum;
    } else if (at) {
      at.count += p.count;
      at.sum += p.sum;
    } else pending.set(key, { ...p });
  };
  const flush = () => {
    flushing = flushing.then(writeOut, writeOut);
    return flushing;
  };
  const timer = opts.flushEveryMs ? setInterval(() => void flush(), opts.flushEveryMs) : undefined;
  timer?.unref();

  return {
    record(tenantId, name, value, poolId) {
      if (!Number.isFinite(value)) return;
      merge({ tenantId, name, poolId, bucket: Math.floor(now() / step) * step, count: 1, sum: value });
      if (poolId === undefined) {
        emfValues.push([name, value]);
        return;
      }
      // Its own EMF line (written at once): the pool is a dimension of this figure only.
      const single = emf.singleMetric();
      single.addDimension("poolId", poolId);
      single.addMetric(name, MetricUnit[metricCatalogue[name].unit], value);
    },
    flush,
    invocationEnded: () => (timer ? Promise.resolve() : flush()),
    async close() {
      if (timer) clearInterval(timer);
      await flush();
    },
  };
}

/** Middy middleware: the function's figures are written before its invocation ends. */
export const flushMetrics = (recorder: FlushingRecorder) => ({
  after: () => recorder.invocationEnded(),
  onError: () => recorder.invocationEnded(),
});
