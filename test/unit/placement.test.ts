import { describe, expect, it } from "vitest";
import { effectiveFreeBytes, GiB, placeDesktops } from "../../shared/domain/placement.ts";
import { decideRefresh } from "../../shared/domain/refresh-policy.ts";

const ds = (datastoreId: string, capacityGiB: number, overcommit = 1, provisionedGiB = 0) => ({
  datastoreId,
  capacityGiB,
  overcommit,
  provisionedBytes: provisionedGiB * GiB,
});

describe("placement", () => {
  it("fills datastores in proportion to their effective free capacity", () => {
    const p = placeDesktops([ds("a", 2), ds("b", 4), ds("c", 8)], 10, GiB);
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    const count = (id: string) => p.datastoreIds.filter((x) => x === id).length;
    expect([count("a"), count("b"), count("c")]).toEqual([1, 3, 6]);
    expect(p.bytesByDatastore).toEqual({ a: GiB, b: 3 * GiB, c: 6 * GiB });
  });

  it("counts overcommit and what is already provisioned", () => {
    expect(effectiveFreeBytes(ds("a", 10, 4, 30))).toBe(10 * GiB);
    const p = placeDesktops([ds("a", 10, 4, 39), ds("b", 2)], 2, GiB);
    expect(p.ok && p.datastoreIds).toEqual(["b", "a"]);
  });

  it("names the shortfall when the desktops do not fit, placing none", () => {
    const p = placeDesktops([ds("a", 1), ds("b", 1.5)], 4, GiB);
    expect(p).toEqual({ ok: false, unplaced: 2, shortfallBytes: 1.5 * GiB });
    expect(placeDesktops([], 1, GiB)).toEqual({ ok: false, unplaced: 1, shortfallBytes: GiB });
  });
});

describe("refresh decision at logoff", () => {
  const now = new Date("2026-01-10T00:00:00Z");
  const desktop = { imageVersion: 1, pristineAt: "2026-01-09T00:00:00Z", updatedAt: "2026-01-09T00:00:00Z" };
  const pool = { imageVersion: 1, refreshPolicy: "none" as const };

  it("follows the policy, and a version change always rebuilds", () => {
    expect(decideRefresh({ ...pool, refreshPolicy: "refresh" }, desktop, { replicaBytes: 100, now })).toBe(
      "refresh",
    );
    expect(decideRefresh({ ...pool, refreshPolicy: "delete" }, desktop, { replicaBytes: 100, now })).toBe(
      "replace",
    );
    expect(decideRefresh(pool, desktop, { replicaBytes: 100, now })).toBe("keep");
    expect(decideRefresh({ ...pool, imageVersion: 2 }, desktop, { replicaBytes: 100, now })).toBe(
      "recompose",
    );
  });

  it("refreshes a kept desktop once its delta passes the threshold or it is too old", () => {
    const withPct = { ...pool, refreshWhenDeltaExceedsPercent: 50 };
    expect(decideRefresh(withPct, desktop, { deltaBytes: 50, replicaBytes: 100, now })).toBe("keep");
    expect(decideRefresh(withPct, desktop, { deltaBytes: 51, replicaBytes: 100, now })).toBe("refresh");
    const withDays = { ...pool, refreshEveryDays: 1 };
    expect(decideRefresh(withDays, desktop, { replicaBytes: 100, now })).toBe("refresh");
    expect(decideRefresh({ ...pool, refreshEveryDays: 2 }, desktop, { replicaBytes: 100, now })).toBe("keep");
  });
});
