import { describe, expect, it } from "vitest";
import { timingFromEnv } from "../../shared/config.ts";
import { readinessCheckId, readinessSettings, rotatingSample } from "../../shared/domain/readiness.ts";
import { replicationMessageSchema } from "../../shared/messages/replication.ts";

describe("DR readiness sampling", () => {
  it("rotates through every user, a sample per period, wrapping", () => {
    const users = ["a", "b", "c", "d", "e"];
    const periods = [0, 1, 2].map((p) => rotatingSample(users, p, 2));
    expect(periods).toEqual([
      ["a", "b"],
      ["c", "d"],
      ["e", "a"],
    ]);
    // Every user is checked within ceil(5 / 2) periods.
    expect(new Set(periods.flat())).toEqual(new Set(users));
    expect(rotatingSample(users, 7, 10)).toEqual(users);
    expect(rotatingSample([], 3, 2)).toEqual([]);
  });

  it("names a check by its period's start, so a repeated run checks the same period", () => {
    const period = 15 * 60_000;
    expect(readinessCheckId(new Date("2026-11-30T14:29:59.999Z"), period)).toBe("2026-11-30T14:15:00.000Z");
    expect(readinessCheckId(new Date("2026-11-30T14:30:00.000Z"), period)).toBe("2026-11-30T14:30:00.000Z");
  });

  it("reads its period and sample size from the environment, with defaults", () => {
    expect(readinessSettings(timingFromEnv({}))).toEqual({ periodMs: 900_000, sampleUsers: 20 });
    expect(
      readinessSettings(
        timingFromEnv({ PRISTINE_READINESS_PERIOD_MS: "1000", PRISTINE_READINESS_SAMPLE_USERS: "3" }),
      ),
    ).toEqual({ periodMs: 1000, sampleUsers: 3 });
    expect(() => timingFromEnv({ PRISTINE_READINESS_PERIOD_MS: "0" })).toThrow(/READINESS_PERIOD/);
    expect(() => timingFromEnv({ PRISTINE_READINESS_SAMPLE_USERS: "x" })).toThrow(/READINESS_SAMPLE/);
  });

  it("a verify message carries checksums; a malformed one is refused", () => {
    const verify = {
      kind: "verify-readiness",
      tenantId: "ten-1",
      checkId: "2026-11-30T14:15:00.000Z",
      sourceRegion: "primary",
      sampledAt: "2026-11-30T14:15:01.000Z",
      rpoMs: 0,
      usersTotal: 1,
      users: [{ userId: "alice", version: 2, replicatedVersion: 2, sha256: "a".repeat(64) }],
      imageVersions: [{ imageId: "img-1", version: 1, sha256: "b".repeat(64) }],
      pools: [{ poolId: "pool-1", createdAt: "2026-11-30T14:00:00.000Z" }],
    };
    expect(replicationMessageSchema.safeParse(verify).success).toBe(true);
    expect(
      replicationMessageSchema.safeParse({ ...verify, users: [{ ...verify.users[0], sha256: "nope" }] })
        .success,
    ).toBe(false);
  });
});
