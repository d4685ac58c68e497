import { describe, expect, it } from "vitest";
import type { Drill } from "../../shared/domain/dr-model.ts";
import { decideDrillStep, drillWaitLimitsMs, rpoAtStart } from "../../shared/domain/drill-steps.ts";

const start = "2026-01-01T00:00:00.000Z";
const at = (ms: number) => new Date(Date.parse(start) + ms);
const drill = (patch: Partial<Drill> = {}): Drill => ({
  tenantId: "ten-1",
  drillId: "drl-1",
  state: "RUNNING",
  phase: "STARTING",
  pools: ["pool-a"],
  startedAt: start,
  phaseStartedAt: start,
  steps: 0,
  ...patch,
});

describe("drill phases", () => {
  it("STARTING picks the users (a sample when asked), counts shipped bytes and RPO, then provisions", () => {
    const d = decideDrillStep(
      drill({ sampleUsers: 2 }),
      {
        phase: "STARTING",
        users: ["u1", "u2", "u3"],
        changes: [
          { origin: "primary", committedAt: start, deltaBytes: 100 },
          { origin: "dr", committedAt: start, deltaBytes: 999 },
        ],
        regionName: "dr",
      },
      at(5),
    );
    expect(d).toMatchObject({
      next: "now",
      patch: { phase: "PROVISIONING", users: ["u1", "u2"], usersPlanned: 2, bytesShipped: 100, rpoMs: 0 },
    });
  });

  it("PROVISIONING records the drill's pools and starts waiting for their desktops", () => {
    expect(
      decideDrillStep(drill({ phase: "PROVISIONING" }), { phase: "PROVISIONING", drillPools: ["p1"] }, at(1)),
    ).toEqual({
      next: "now",
      patch: { phase: "WAITING_FOR_DESKTOPS", phaseStartedAt: at(1).toISOString(), drillPools: ["p1"] },
    });
  });

  it("WAITING_FOR_DESKTOPS waits until every desktop is AVAILABLE, and fails past its limit", () => {
    const waiting = drill({ phase: "WAITING_FOR_DESKTOPS" });
    expect(
      decideDrillStep(waiting, { phase: "WAITING_FOR_DESKTOPS", available: 2, total: 3 }, at(1000)),
    ).toEqual({
      patch: {},
      next: "wait",
    });
    // No desktops at all is not "all ready".
    expect(
      decideDrillStep(waiting, { phase: "WAITING_FOR_DESKTOPS", available: 0, total: 0 }, at(1000)),
    ).toMatchObject({
      next: "wait",
    });
    expect(
      decideDrillStep(waiting, { phase: "WAITING_FOR_DESKTOPS", available: 3, total: 3 }, at(1000)),
    ).toMatchObject({
      next: "now",
      patch: { phase: "LOGGING_ON" },
    });
    const late = at((drillWaitLimitsMs.WAITING_FOR_DESKTOPS ?? 0) + 1);
    expect(decideDrillStep(waiting, { phase: "WAITING_FOR_DESKTOPS", available: 2, total: 3 }, late)).toEqual(
      {
        fail: "timed out waiting for the drill's desktops",
      },
    );
  });

  it("LOGGING_ON records the sessions and waits for the users' data", () => {
    const sessions = [{ sessionId: "s1", userId: "u1", poolId: "p1" }];
    expect(
      decideDrillStep(drill({ phase: "LOGGING_ON" }), { phase: "LOGGING_ON", sessions }, at(2)),
    ).toMatchObject({
      next: "now",
      patch: { phase: "WAITING_FOR_USER_DATA", sessions, usersLoggedOn: 1 },
    });
  });

  it("WAITING_FOR_USER_DATA keeps what it saw, then measures RTO from the attach times", () => {
    const waiting = drill({
      phase: "WAITING_FOR_USER_DATA",
      sessions: [
        { sessionId: "s1", userId: "u1", poolId: "p1" },
        { sessionId: "s2", userId: "u2", poolId: "p1" },
      ],
    });
    const t1 = Date.parse(start) + 3000;
    expect(
      decideDrillStep(waiting, { phase: "WAITING_FOR_USER_DATA", attachedAt: { u1: t1 } }, at(4000)),
    ).toEqual({
      patch: { attachedAt: { u1: t1 } },
      next: "wait",
    });
    const done = decideDrillStep(
      waiting,
      { phase: "WAITING_FOR_USER_DATA", attachedAt: { u1: t1, u2: t1 + 2000 } },
      at(6000),
    );
    expect(done).toMatchObject({
      next: "now",
      patch: { phase: "VERIFYING", rtoFirstLogonMs: 3000, rtoAllLogonsMs: 5000 },
    });
    const late = at((drillWaitLimitsMs.WAITING_FOR_USER_DATA ?? 0) + 1);
    expect(decideDrillStep(waiting, { phase: "WAITING_FOR_USER_DATA", attachedAt: {} }, late)).toHaveProperty(
      "fail",
    );
  });

  it("VERIFYING counts verified and failed users; CLEANING_UP ends the drill by its outcome", () => {
    const verifying = drill({ phase: "VERIFYING", users: ["u1", "u2"] });
    const failed = [{ userId: "u2", reason: "checksum differs" }];
    const v = decideDrillStep(verifying, { phase: "VERIFYING", failed }, at(7));
    expect(v).toMatchObject({
      next: "now",
      patch: { phase: "CLEANING_UP", usersVerified: 1, usersFailed: failed },
    });
    expect(
      decideDrillStep(drill({ phase: "CLEANING_UP", usersFailed: [] }), { phase: "CLEANING_UP" }, at(8)),
    ).toMatchObject({
      next: "done",
      patch: { phase: "DONE", state: "SUCCEEDED", finishedAt: at(8).toISOString() },
    });
    expect(
      decideDrillStep(drill({ phase: "CLEANING_UP", usersFailed: failed }), { phase: "CLEANING_UP" }, at(8)),
    ).toMatchObject({ patch: { state: "FAILED" } });
    expect(
      decideDrillStep(drill({ phase: "CLEANING_UP", error: "timed out" }), { phase: "CLEANING_UP" }, at(8)),
    ).toMatchObject({ patch: { state: "FAILED" } });
  });

  it("an observation from another phase than the drill's is refused", () => {
    expect(decideDrillStep(drill({ phase: "VERIFYING" }), { phase: "CLEANING_UP" }, at(1))).toHaveProperty(
      "fail",
    );
  });
});

describe("RPO at drill start", () => {
  it("is the age of the oldest change shipped here but not applied when the drill started", () => {
    const t = (s: number) => new Date(Date.parse(start) + s * 1000).toISOString();
    const rpo = rpoAtStart(t(100), [
      { committedAt: t(10), replicatedAt: t(20) }, // applied before the start
      { committedAt: t(40), replicatedAt: t(150) }, // applied after: counts
      { committedAt: t(60) }, // not applied yet: counts
      { committedAt: t(120) }, // committed after the start: does not count
    ]);
    expect(rpo.rpoMs).toBe(60_000);
    expect(rpoAtStart(t(100), []).rpoMs).toBe(0);
  });
});
