/**
 * The DR drill's decisions, pure (no I/O): given what one step observed, what the drill records
 * and whether it goes on at once, waits, or is done. The job in drill.ts gathers the observations
 * and carries the decisions out; unit-tested in test/unit/drill-steps.test.ts.
 */
import type { Drill, DrillPhase } from "./dr-model.ts";

/** How long a drill waits for its desktops, then for its users' data, before it fails. */
export const drillWaitLimitsMs: Partial<Record<DrillPhase, number>> = {
  WAITING_FOR_DESKTOPS: 10 * 60_000,
  WAITING_FOR_USER_DATA: 5 * 60_000,
};

/** What one step saw, by the phase it ran in. */
export type DrillObservation =
  | {
      phase: "STARTING";
      /** Users with replicated data (version > 0), in a stable order. */
      users: string[];
      changes: { origin: string; committedAt: string; replicatedAt?: string; deltaBytes: number }[];
      regionName: string;
    }
  | { phase: "PROVISIONING"; drillPools: string[] }
  | { phase: "WAITING_FOR_DESKTOPS"; available: number; total: number }
  | { phase: "LOGGING_ON"; sessions: NonNullable<Drill["sessions"]> }
  | { phase: "WAITING_FOR_USER_DATA"; attachedAt: Record<string, number> }
  | { phase: "VERIFYING"; failed: { userId: string; reason: string }[] }
  | { phase: "CLEANING_UP" };

export type DrillDecision =
  /** Record `patch`; `next` says whether the job runs again at once, after a pause, or never. */
  { patch: Partial<Drill>; next: "now" | "wait" | "done" } | { fail: string };

const enter = (phase: DrillPhase, now: Date): Partial<Drill> => ({
  phase,
  phaseStartedAt: now.toISOString(),
});

function waitedTooLong(drill: Drill, now: Date): boolean {
  const limit = drillWaitLimitsMs[drill.phase];
  const since = Date.parse(drill.phaseStartedAt ?? drill.startedAt);
  return limit !== undefined && now.getTime() - since > limit;
}

export function decideDrillStep(drill: Drill, seen: DrillObservation, now: Date): DrillDecision {
  if (seen.phase !== drill.phase) return { fail: `step for ${seen.phase} ran in phase ${drill.phase}` };
  const started = Date.parse(drill.startedAt);
  switch (seen.phase) {
    case "STARTING": {
      const users = seen.users.slice(0, drill.sampleUsers ?? seen.users.length);
      const incoming = seen.changes.filter((c) => c.origin !== seen.regionName);
      return {
        patch: {
          ...enter("PROVISIONING", now),
          users,
          usersPlanned: users.length,
          bytesShipped: incoming.reduce((sum, c) => sum + c.deltaBytes, 0),
          ...rpoAtStart(drill.startedAt, incoming),
        },
        next: "now",
      };
    }
    case "PROVISIONING":
      return { patch: { ...enter("WAITING_FOR_DESKTOPS", now), drillPools: seen.drillPools }, next: "now" };
    case "WAITING_FOR_DESKTOPS":
      if (seen.total > 0 && seen.available === seen.total)
        return { patch: enter("LOGGING_ON", now), next: "now" };
      if (waitedTooLong(drill, now)) return { fail: "timed out waiting for the drill's desktops" };
      return { patch: {}, next: "wait" };
    case "LOGGING_ON":
      return {
        patch: {
          ...enter("WAITING_FOR_USER_DATA", now),
          sessions: seen.sessions,
          usersLoggedOn: seen.sessions.length,
        },
        next: "now",
      };
    case "WAITING_FOR_USER_DATA": {
      const expected = (drill.sessions ?? []).map((s) => s.userId);
      const times = expected.map((u) => seen.attachedAt[u]).filter((t): t is number => t !== undefined);
      if (times.length === expected.length) {
        return {
          patch: {
            ...enter("VERIFYING", now),
            attachedAt: seen.attachedAt,
            ...(times.length
              ? {
                  rtoFirstLogonMs: Math.min(...times) - started,
                  rtoAllLogonsMs: Math.max(...times) - started,
                }
              : {}),
          },
          next: "now",
        };
      }
      if (waitedTooLong(drill, now)) return { fail: "timed out waiting for the users' data to attach" };
      return { patch: { attachedAt: seen.attachedAt }, next: "wait" };
    }
    case "VERIFYING":
      return {
        patch: {
          ...enter("CLEANING_UP", now),
          usersVerified: (drill.users ?? []).length - seen.failed.length,
          usersFailed: seen.failed,
        },
        next: "now",
      };
    case "CLEANING_UP":
      return {
        patch: {
          ...enter("DONE", now),
          state: drill.usersFailed?.length || drill.error ? "FAILED" : "SUCCEEDED",
          finishedAt: now.toISOString(),
        },
        next: "done",
      };
  }
}

/**
 * RPO as this region can know it: the oldest change the source shipped here that was not applied
 * yet at drill start (changes the source has not shipped at all are its own backlog, shown by
 * GET /v1/dr/replication there).
 */
export function rpoAtStart(
  startedAt: string,
  incoming: { committedAt: string; replicatedAt?: string }[],
): { rpoMs: number; rpoNote: string } {
  const start = Date.parse(startedAt);
  const late = incoming.filter(
    (c) => Date.parse(c.committedAt) <= start && (!c.replicatedAt || Date.parse(c.replicatedAt) > start),
  );
  const oldest = late.reduce((min, c) => Math.min(min, Date.parse(c.committedAt)), start);
  return {
    rpoMs: start - oldest,
    rpoNote: "changes shipped to this region and not yet applied at drill start",
  };
}
