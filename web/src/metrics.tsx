import { useMemo } from "preact/hooks";
import type uPlot from "uplot";
import { getJson } from "./api.ts";
import { Chart, lineOptions } from "./chart.tsx";
import { duration } from "./format.ts";
import { usePoll } from "./hooks.ts";
import type { Metrics } from "./types.ts";
import { ErrorLine } from "./ui.tsx";

/** The series the API is expected to keep, in this order; others it sends come after them. */
const expected = [
  "logonsServed",
  "logonsRefused",
  "logonLatencyMs",
  "refreshSeconds",
  "bootSeconds",
  "provisionSeconds",
  "replicationLagSeconds",
];

/** GET /v1/metrics?minutes=30: every figure of the tenant, one point per 10 s step. */
const loadMetrics = () => getJson<Metrics>("/v1/metrics?minutes=30");

export function MetricsPanel() {
  const metrics = usePoll(loadMetrics, 10_000, []);
  const series = [...(metrics.data?.series ?? [])].sort(
    (a, b) => rank(a.name) - rank(b.name) || a.name.localeCompare(b.name),
  );
  return (
    <section class="panel" data-testid="metrics-panel">
      <h2>
        Metrics <small>last 30 minutes</small>
      </h2>
      <ErrorLine error={metrics.error} />
      {metrics.data && series.length === 0 && <p class="muted">No metrics yet.</p>}
      <div class="charts">
        {series.map((s) => (
          <MetricChart key={`${s.name}:${s.poolId ?? ""}`} series={s} />
        ))}
      </div>
    </section>
  );
}

const rank = (name: string) => {
  const i = expected.indexOf(name);
  return i < 0 ? expected.length : i;
};

/** Count series plot their count per step; time series and a pool's gauges their mean (sum / count). */
function MetricChart(props: { series: Metrics["series"][number] }) {
  const s = props.series;
  const isCount = s.unit === "Count" && s.poolId === undefined;
  const options = useMemo(
    () =>
      lineOptions({
        series: [{ label: isCount ? "count" : "mean", color: "#1c6dd0" }],
        value: isCount
          ? (v) => String(Math.round(v * 100) / 100)
          : (v) => duration(s.unit === "Seconds" ? v * 1000 : v),
        height: 160,
        minSpanSeconds: 1800,
        showPoints: !isCount,
      }),
    [s.unit],
  );
  const data = useMemo<uPlot.AlignedData>(
    () => [
      s.points.map((p) => Date.parse(p.t) / 1000),
      s.points.map((p) => (isCount ? p.count : p.count > 0 ? p.sum / p.count : null)),
    ],
    [s],
  );
  const count = s.points.reduce((n, p) => n + p.count, 0);
  const sum = s.points.reduce((n, p) => n + p.sum, 0);
  const summary = isCount
    ? `${count} in all`
    : s.unit === "Count"
      ? `pool ${s.poolId}: latest ${lastMean(s.points) ?? "none"}`
      : count > 0
        ? `mean ${duration(s.unit === "Seconds" ? (sum / count) * 1000 : sum / count)} of ${count}`
        : "none";
  return (
    <div class="metric" data-metric={s.name} data-pool={s.poolId} data-count={count}>
      <h3>
        {s.name} <small>{s.unit}</small> <small class="muted">{summary}</small>
      </h3>
      <Chart options={options} data={data} />
    </div>
  );
}

/** A gauge's value: the mean of its latest step that has one. */
function lastMean(points: { count: number; sum: number }[]) {
  const p = points.filter((x) => x.count > 0).at(-1);
  return p ? Math.round((p.sum / p.count) * 100) / 100 : undefined;
}
