import { describe, expect, it } from "vitest";
import {
  assertTransition,
  canTransition,
  desktopStates,
  emptyStateCounts,
} from "../../shared/domain/desktop-state.ts";

describe("desktop state machine", () => {
  it("follows the life cycle of DESIGN.md", () => {
    expect(canTransition("PROVISIONING", "AVAILABLE")).toBe(true);
    expect(canTransition("AVAILABLE", "ASSIGNED")).toBe(true);
    expect(canTransition("ASSIGNED", "REFRESHING")).toBe(true);
    expect(canTransition("REFRESHING", "AVAILABLE")).toBe(true);
    expect(canTransition("AVAILABLE", "RECOMPOSING")).toBe(true);
  });

  it("refuses shortcuts that would hand out a dirty desktop", () => {
    expect(canTransition("REFRESHING", "ASSIGNED")).toBe(false);
    expect(canTransition("PROVISIONING", "ASSIGNED")).toBe(false);
    expect(canTransition("DELETING", "AVAILABLE")).toBe(false);
    expect(() => assertTransition("ERROR", "ASSIGNED")).toThrow(
      /illegal desktop transition ERROR -> ASSIGNED/,
    );
  });

  it("every state but DELETING can be drained", () => {
    for (const s of desktopStates) expect(canTransition(s, "DELETING")).toBe(s !== "DELETING");
    expect(Object.values(emptyStateCounts())).toHaveLength(desktopStates.length);
  });
});
