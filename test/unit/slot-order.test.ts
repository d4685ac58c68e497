import { describe, expect, it } from "vitest";
import { slotOrder } from "../../shared/adapters/dynamodb/repositories/datastores.ts";

describe("the order in which a worker tries a cap's slots", () => {
  it("tries every slot once", () => {
    for (let i = 0; i < 20; i++) expect([...slotOrder(7, undefined)].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it("tries the slots its own jobs hold last", () => {
    const mine = new Set([0, 2, 3]);
    for (let i = 0; i < 20; i++) {
      const order = slotOrder(5, mine);
      expect([...order].sort()).toEqual([0, 1, 2, 3, 4]);
      expect(new Set(order.slice(0, 2))).toEqual(new Set([1, 4]));
    }
  });

  it("starts at a random slot, so that concurrent takers spread out", () => {
    const firsts = new Set(Array.from({ length: 200 }, () => slotOrder(20, new Set([5]))[0]));
    expect(firsts.size).toBeGreaterThan(10);
    expect(firsts.has(5)).toBe(false);
  });
});
