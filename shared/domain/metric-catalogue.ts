/**
 * The figures Pristine publishes about itself, per tenant: the one list that the functions record,
 * CloudWatch receives (embedded metric format) and `GET /v1/metrics` serves as time series.
 * A figure marked `perPool` is a gauge kept per pool: one series per pool (the pool id its key, a
 * `poolId` dimension in CloudWatch); a step holds the latest value taken in it (count 1, sum the value).
 */
export const metricCatalogue = {
  logonsServed: { unit: "Count", about: "logons that got a desktop (reconnects included)" },
  logonsRefused: { unit: "Count", about: "logons answered with a problem (a full pool, a bad request)" },
  logonsQueued: { unit: "Count", about: "logons answered with a ticket (a self-sizing pool had none free)" },
  logonLatencyMs: { unit: "Milliseconds", about: "time to answer a logon, served or refused" },
  ticketWaitSeconds: { unit: "Seconds", about: "a queued logon: from its ticket to its desktop" },
  sessionsTimedOut: {
    unit: "Count",
    about: "sessions a pool's timeout logged off (disconnected, idle or past their maximum lifetime)",
  },
  provisionSeconds: { unit: "Seconds", about: "a new desktop's disk: from its record to a disk ready" },
  refreshSeconds: { unit: "Seconds", about: "a desktop's refresh: from the logoff to a pristine disk" },
  recomposeSeconds: { unit: "Seconds", about: "a desktop's recompose: from its job to the new disk" },
  bootSeconds: { unit: "Seconds", about: "a desktop's VM: from its start to the agent's Desktop Ready" },
  replicationLagSeconds: {
    unit: "Seconds",
    about: "a user's committed change: from its commit to applied and verified in the peer region",
  },
  readinessFailures: {
    unit: "Count",
    about:
      "failures a DR readiness check found (one value per check: users' data, image versions, pools); recorded where it ran and where its report arrived",
  },
  repairedStuckDesktops: {
    unit: "Count",
    about: "reconciler: desktops left in a transitional state (a worker died) whose job it sent again",
  },
  repairedOrphanDisks: {
    unit: "Count",
    about: "reconciler: desktop disk files no desktop owns (its desktop or generation gone), removed",
  },
  repairedDisklessDesktops: {
    unit: "Count",
    about: "reconciler: free desktops whose disk was gone, quarantined and replaced",
  },
  repairedOrphanSessions: {
    unit: "Count",
    about: "reconciler: sessions ended because their desktop is gone or their user's lock does not name them",
  },
  repairedStalledPublishes: {
    unit: "Count",
    about: "reconciler: image versions that stayed PUBLISHING too long, marked FAILED",
  },
  withdrawnDesktops: {
    unit: "Count",
    about: "reconciler: free desktops withdrawn (UNREACHABLE) because their host stopped heartbeating",
  },
  freeDesktops: {
    unit: "Count",
    perPool: true,
    about:
      "a pool's free desktops (AVAILABLE or STOPPED), a gauge per pool: counted by each run of a self-sizing pool's sizer, and for every pool at the reconciler's recount",
  },
  poweredOnFreeDesktops: {
    unit: "Count",
    perPool: true,
    about:
      "a pool's free desktops whose VM runs (AVAILABLE; STOPPED ones are powered off), a gauge per pool, counted with freeDesktops",
  },
} as const;

export type MetricName = keyof typeof metricCatalogue;
export const metricNames = Object.keys(metricCatalogue) as MetricName[];

/** A gauge kept per pool (one series per pool), not one series for the tenant. */
export const isPerPool = (name: MetricName): boolean => "perPool" in metricCatalogue[name];

/** Series are kept in steps of this many seconds. */
export const metricStepSeconds = 10;

/** The catalogue as a Markdown table (docs/api.md, Metrics). */
export function metricTableMarkdown(): string {
  const rows = metricNames.map((name) => {
    const m = metricCatalogue[name];
    return `| \`${name}\` | ${m.unit} | ${isPerPool(name) ? "per pool" : "tenant"} | ${m.about} |`;
  });
  return ["| figure | unit | series | what it measures |", "| --- | --- | --- | --- |", ...rows].join("\n");
}
