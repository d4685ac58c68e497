/** Benchmark output: a readable table, then one JSON line with the figures (the last line). */
import { percentile as nearestRank } from "../../shared/domain/replication-lag.ts";

/** The p-th percentile (nearest rank, as the product reports lag) of ascending values; NaN for none. */
export const percentile = (sorted: number[], p: number): number => nearestRank(sorted, p) ?? Number.NaN;

export const median = (xs: number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function printTable(title: string, rows: [string, string | number][]): void {
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(`\n${title}`);
  console.log("-".repeat(title.length));
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
  console.log("");
}

export function printJson(figures: Record<string, unknown>): void {
  console.log(JSON.stringify(figures));
}

/** Runs `fn` over `items` with at most `limit` at a time. */
export async function runLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>) {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: limit }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
    }),
  );
}
