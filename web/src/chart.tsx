import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";

export type ChartOptions = Omit<uPlot.Options, "width" | "height"> & { height?: number };

/**
 * A uPlot chart that fills its container's width. It is made again when `options` change (callers
 * keep them in useMemo) and given new data in place otherwise.
 */
export function Chart(props: { options: ChartOptions; data: uPlot.AlignedData; testid?: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = useRef(props.data);
  data.current = props.data;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const { height = 220, ...rest } = props.options;
    const made = new uPlot({ ...rest, width: Math.max(200, el.clientWidth), height }, data.current, el);
    plot.current = made;
    const observer = new ResizeObserver(() => made.setSize({ width: Math.max(200, el.clientWidth), height }));
    observer.observe(el);
    return () => {
      observer.disconnect();
      made.destroy();
      plot.current = null;
    };
  }, [props.options]);

  useEffect(() => {
    plot.current?.setData(props.data);
  }, [props.data]);

  return <div class="chart" ref={box} data-testid={props.testid} />;
}

/** Two bars side by side for each named category (x is the category's index). */
export function pairedBarOptions(opts: {
  categories: string[];
  series: [{ label: string; color: string }, { label: string; color: string }];
  value: (v: number) => string;
  height?: number;
  /** What a category is (the legend's first label). */
  what: string;
}): ChartOptions {
  const bars = (align: -1 | 1) => uPlot.paths.bars?.({ size: [0.4, 70], align, gap: 1 });
  return {
    height: opts.height ?? 240,
    legend: { show: true },
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    scales: {
      x: { time: false, range: () => [-0.5, Math.max(0, opts.categories.length - 0.5)] },
      y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] },
    },
    axes: [
      {
        splits: () => opts.categories.map((_, i) => i),
        values: (_u, splits) => splits.map((i) => opts.categories[i] ?? ""),
        grid: { show: false },
      },
      { values: (_u, splits) => splits.map(opts.value), size: 80 },
    ],
    series: [
      { label: opts.what, value: (_u, i) => (i === null ? "" : (opts.categories[i] ?? "")) },
      ...opts.series.map((s, i) => ({
        label: s.label,
        stroke: s.color,
        fill: s.color,
        width: 0,
        paths: bars(i === 0 ? -1 : 1),
        points: { show: false },
        value: (_u: uPlot, v: number | null) => (v === null ? "—" : opts.value(v)),
      })),
    ],
  };
}

/** Lines over time (x in epoch seconds). */
export function lineOptions(opts: {
  series: { label: string; color: string }[];
  /** Draw every point (sparse series: a step with one observation between empty ones). */
  showPoints?: boolean;
  value: (v: number) => string;
  height?: number;
  minSpanSeconds?: number;
}): ChartOptions {
  const minSpan = opts.minSpanSeconds ?? 300;
  return {
    height: opts.height ?? 200,
    legend: { show: true },
    scales: {
      // At least `minSpanSeconds` wide, so that a few points do not stretch over years.
      // (From the data itself: uPlot widens a single point to 86400 / 1e-3 seconds.)
      x: {
        range: (u, min, max) => {
          const xs = u.data[0] ?? [];
          const hi = xs.length ? (xs[xs.length - 1] as number) : max;
          const lo = xs.length ? (xs[0] as number) : min;
          return [Math.min(lo, hi - minSpan), hi];
        },
      },
      y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] },
    },
    axes: [{ space: 90 }, { values: (_u, splits) => splits.map(opts.value), size: 70 }],
    series: [
      { label: "time" },
      ...opts.series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: 2,
        spanGaps: false,
        points: opts.showPoints ? { show: true, size: 6, fill: s.color } : { size: 4 },
        value: (_u: uPlot, v: number | null) => (v === null ? "—" : opts.value(v)),
      })),
    ],
  };
}
