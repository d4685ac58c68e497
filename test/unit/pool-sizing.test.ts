/** The sizer's decisions (pure): growth for users on and waiting, the line's headroom, idle removal. */
import { describe, expect, it } from "vitest";
import type { Desktop } from "../../shared/domain/model.ts";
import { decideSizing, type PoolSizing } from "../../shared/domain/pool-sizing.ts";

const s: PoolSizing = {
  selfSizing: true,
  minSize: 2,
  maxSize: 50,
  spare: 3,
  poweredOnSpare: undefined,
  idleSeconds: 600,
  ticketTimeoutSeconds: 300,
};
const now = Date.parse("2026-11-30T12:00:00.000Z");
const desktops = (state: Desktop["state"], n: number, minutesAgo = 0) =>
  Array.from({ length: n }, (_, i) => ({
    tenantId: "t",
    poolId: "p",
    desktopId: `${state}-${i}`,
    datastoreId: "ds",
    state,
    updatedAt: new Date(now - minutesAgo * 60_000).toISOString(),
  }));

describe("decideSizing", () => {
  it("grows to the users on plus the spare ones", () => {
    const on = desktops("ASSIGNED", 5);
    expect(decideSizing(s, 5, on, 0, now)).toEqual({ action: "add", count: 3 });
  });

  it("while users wait, provisions as many again ahead of the line, within maxSize", () => {
    const on = desktops("ASSIGNED", 10);
    expect(decideSizing(s, 10, on, 4, now)).toEqual({ action: "add", count: 2 * 4 + 3 });
    expect(decideSizing(s, 10, on, 30, now)).toEqual({ action: "add", count: 40 });
  });

  it("keeps idle free desktops beyond the spare ones until idleSeconds, then removes them, never below minSize", () => {
    const young = [...desktops("AVAILABLE", 6, 1)];
    expect(decideSizing(s, 6, young, 0, now)).toMatchObject({ action: "recheck" });
    const old = desktops("AVAILABLE", 6, 11);
    const decision = decideSizing(s, 6, old, 0, now);
    expect(decision.action).toBe("remove");
    if (decision.action === "remove") expect(decision.desktops).toHaveLength(3);
    const few = desktops("AVAILABLE", 2, 11);
    expect(decideSizing({ ...s, spare: 0 }, 2, few, 0, now)).toEqual({ action: "none" });
  });

  it("removes nothing while users wait, and stopped desktops go first", () => {
    const mixed = [...desktops("AVAILABLE", 3, 20), ...desktops("STOPPED", 3, 11)];
    expect(decideSizing(s, 6, mixed, 1, now).action).not.toBe("remove");
    const decision = decideSizing(s, 6, mixed, 0, now);
    expect(decision.action === "remove" && decision.desktops.map((d) => d.state)).toEqual([
      "STOPPED",
      "STOPPED",
      "STOPPED",
    ]);
  });

  it("a fixed pool is never sized", () => {
    expect(decideSizing({ ...s, selfSizing: false }, 1, [], 5, now)).toEqual({ action: "none" });
  });
});
