/** Pure figures of replication lag (no I/O): unit-tested in test/unit/replication-lag.test.ts. */

/** The p-th percentile (nearest rank) of ascending values; undefined for none. */
export function percentile(sorted: number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** RPO of each replicated change (commit to verified apply in the peer), as p50 and p99. */
export function rpoPercentiles(changes: { committedAt: string; replicatedAt?: string }[]): {
  p50: number | undefined;
  p99: number | undefined;
} {
  const rpos = changes
    .filter((c) => c.replicatedAt)
    .map((c) => Date.parse(c.replicatedAt as string) - Date.parse(c.committedAt))
    .sort((a, b) => a - b);
  return { p50: percentile(rpos, 50), p99: percentile(rpos, 99) };
}
