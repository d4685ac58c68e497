import { expect, it } from "vitest";
import { percentile, rpoPercentiles } from "../../shared/domain/replication-lag.ts";

it("percentiles are nearest-rank on ascending values, undefined for none", () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  expect(percentile(xs, 50)).toBe(50);
  expect(percentile(xs, 99)).toBe(99);
  expect(percentile(xs, 100)).toBe(100);
  expect(percentile([7], 99)).toBe(7);
  expect(percentile([], 50)).toBeUndefined();
});

it("RPO percentiles count only replicated changes, from commit to verified apply", () => {
  const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
  expect(
    rpoPercentiles([
      { committedAt: at(0), replicatedAt: at(2) },
      { committedAt: at(0), replicatedAt: at(4) },
      { committedAt: at(0), replicatedAt: at(9) },
      { committedAt: at(0) }, // not replicated yet
    ]),
  ).toEqual({ p50: 4000, p99: 9000 });
  expect(rpoPercentiles([])).toEqual({ p50: undefined, p99: undefined });
});
