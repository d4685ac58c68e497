import { describe, expect, it } from "vitest";
import { entities } from "../../shared/adapters/dynamodb/entities.ts";
import { watch, watchShards } from "../../shared/adapters/dynamodb/keys.ts";
import { watchIndex } from "../../shared/adapters/dynamodb/table-schema.ts";
import { desktopStates, isTransitional } from "../../shared/domain/desktop-state.ts";
import type { Desktop } from "../../shared/domain/model.ts";
import { ownsNothing } from "../../shared/domain/sweep.ts";
import type { DesktopDiskFile } from "../../shared/ports/index.ts";

const desktop = (over: Partial<Desktop> = {}): Desktop =>
  ({
    tenantId: "ten-a",
    poolId: "pool-a",
    desktopId: "dsk-a",
    datastoreId: "ds-1",
    state: "AVAILABLE",
    generation: 2,
    updatedAt: "2026-01-01T00:00:00.000Z",
    ...over,
  }) as Desktop;

const file = (over: Partial<DesktopDiskFile> = {}): DesktopDiskFile => ({
  datastoreId: "ds-1",
  tenantId: "ten-a",
  poolId: "pool-a",
  desktopId: "dsk-a",
  generation: 2,
  name: "dsk-a.g2.qcow2",
  partial: false,
  modifiedAt: "2026-01-01T00:00:00.000Z",
  ...over,
});

describe("the sweep's identity check: a disk file is removed only when nobody owns it", () => {
  it("keeps the current generation of a desktop at rest, and removes its other generations", () => {
    expect(ownsNothing(file(), desktop())).toBe(false);
    expect(ownsNothing(file({ generation: 1, name: "dsk-a.g1.qcow2" }), desktop())).toBe(true);
    expect(ownsNothing(file({ generation: 0, name: "dsk-a.qcow2" }), desktop())).toBe(true);
    // A desktop from before fencing (no generation) owns its generation-0 file.
    expect(ownsNothing(file({ generation: 0 }), desktop({ generation: undefined }))).toBe(false);
  });

  it("removes the files of a desktop that is gone, or that lives on another datastore", () => {
    expect(ownsNothing(file(), undefined)).toBe(true);
    expect(ownsNothing(file(), desktop({ datastoreId: "ds-2" }))).toBe(true);
  });

  it("never touches the files of a desktop a job may be working on", () => {
    for (const state of desktopStates.filter(isTransitional)) {
      expect(ownsNothing(file({ generation: 1 }), desktop({ state }))).toBe(false);
      expect(ownsNothing(file({ partial: true }), desktop({ state }))).toBe(false);
    }
  });

  it("removes a temporary file left by a write that ended", () => {
    expect(ownsNothing(file({ partial: true, name: "dsk-a.g2.qcow2.0a1b.tmp" }), desktop())).toBe(true);
  });
});

describe("the watch index", () => {
  it("holds desktops in transitional states and ASSIGNED ones, and no others", () => {
    for (const state of desktopStates) {
      const item = entities.desktop.toItem(desktop({ state, sessionStartedAt: "2026-01-02T00:00:00.000Z" }));
      const expected = isTransitional(state) ? "TRANSIT#" : state === "ASSIGNED" ? "ASSIGNED#" : undefined;
      if (expected) expect(String(item[watchIndex.pk])).toMatch(new RegExp(`^${expected}\\d$`));
      else expect(item[watchIndex.pk]).toBeUndefined();
    }
    // An assigned desktop waits since its logon; a transitional one since its last change.
    const assigned = entities.desktop.toItem(
      desktop({ state: "ASSIGNED", sessionStartedAt: "2026-01-02T00:00:00.000Z" }),
    );
    expect(assigned[watchIndex.sk]).toBe("2026-01-02T00:00:00.000Z");
    expect(entities.desktop.toItem(desktop({ state: "PROVISIONING" }))[watchIndex.sk]).toBe(
      "2026-01-01T00:00:00.000Z",
    );
  });

  it("keeps its keys out of the domain objects read back", () => {
    const item = entities.desktop.toItem(desktop({ state: "PROVISIONING" }));
    expect(entities.desktop.fromItem(item)).not.toHaveProperty(watchIndex.pk);
    expect(entities.desktop.fromItem(item)).not.toHaveProperty(watchIndex.sk);
  });

  it("spreads a kind over every shard, each id always to the same one", () => {
    const seen = new Set(Array.from({ length: 200 }, (_, i) => watch.partition("TRANSIT", `dsk-${i}`)));
    expect([...seen].sort()).toEqual(watch.partitions("TRANSIT").sort());
    expect(seen.size).toBe(watchShards);
    expect(watch.partition("LOCK", "alice")).toBe(watch.partition("LOCK", "alice"));
  });
});
