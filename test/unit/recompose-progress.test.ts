import { expect, it } from "vitest";
import { recomposeProgress } from "../../shared/domain/recompose-progress.ts";

it("counts desktops done on the target version, pending, failed, and leaves deleted ones out", () => {
  const recompose = { fromVersion: 1, toVersion: 2, startedAt: "2026-01-01T00:00:00.000Z" };
  const progress = recomposeProgress(recompose, [
    { state: "AVAILABLE", imageVersion: 2 },
    { state: "ASSIGNED", imageVersion: 2 },
    { state: "ASSIGNED", imageVersion: 1 }, // busy: moves at its user's logoff
    { state: "RECOMPOSING", imageVersion: 1 },
    { state: "REFRESHING", imageVersion: 2 }, // on the version, but not back yet
    { state: "ERROR", imageVersion: 1 },
    { state: "DELETING", imageVersion: 1 },
  ]);
  expect(progress).toEqual({ ...recompose, done: 2, pending: 3, failed: 1 });
});
