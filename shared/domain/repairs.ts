/** What the reconciler (and the datastore sweep it asks for) puts right: each repair logged and counted. */
import { logger } from "../logger.ts";
import type { Ports } from "../ports/index.ts";
import type { MetricName } from "./metric-catalogue.ts";

export const repairKinds = {
  "stuck-desktop": "repairedStuckDesktops",
  "orphan-disk": "repairedOrphanDisks",
  "diskless-desktop": "repairedDisklessDesktops",
  "orphan-session": "repairedOrphanSessions",
  "session-without-desktop": "repairedOrphanSessions",
  "stalled-publish": "repairedStalledPublishes",
  "withdrawn-desktop": "withdrawnDesktops",
} as const satisfies Record<string, MetricName>;
export type RepairKind = keyof typeof repairKinds;

/** One log line with the ids of what was repaired, and one count in the tenant's figure for its kind. */
export function recordRepair(
  ports: Pick<Ports, "metrics">,
  kind: RepairKind,
  ids: { tenantId: string } & Record<string, string | number | undefined>,
): void {
  logger.info("reconciler repair", { repair: kind, ...ids });
  ports.metrics.record(ids.tenantId, repairKinds[kind], 1);
}
