/** What a desktop's logoff does to its disk: pure, decided by the refresh job (which knows the delta). */
import type { Desktop, Pool } from "./model.ts";

export type RefreshDecision =
  /** The pool moved to another version: a new disk on the pool's version. */
  | "recompose"
  /** Discard the delta: back to pristine on the same version. */
  | "refresh"
  /** Destroy the desktop and provision a new one in its place. */
  | "replace"
  /** Hand the desktop back as it is (dedicated users keep their changes). */
  | "keep";

const dayMs = 24 * 60 * 60 * 1000;

export function decideRefresh(
  pool: Pick<Pool, "imageVersion" | "refreshPolicy" | "refreshWhenDeltaExceedsPercent" | "refreshEveryDays">,
  desktop: Pick<Desktop, "imageVersion" | "pristineAt" | "updatedAt">,
  facts: { deltaBytes?: number; replicaBytes: number; now: Date },
): RefreshDecision {
  if (desktop.imageVersion !== pool.imageVersion) return "recompose";
  if (pool.refreshPolicy === "refresh") return "refresh";
  if (pool.refreshPolicy === "delete") return "replace";
  const pct = pool.refreshWhenDeltaExceedsPercent;
  if (
    pct !== undefined &&
    facts.deltaBytes !== undefined &&
    facts.deltaBytes > (pct / 100) * facts.replicaBytes
  )
    return "refresh";
  const days = pool.refreshEveryDays;
  const since = Date.parse(desktop.pristineAt ?? desktop.updatedAt);
  if (days !== undefined && facts.now.getTime() - since >= days * dayMs) return "refresh";
  return "keep";
}

/** Only a `none` pool with a delta threshold needs the delta measured. */
export const needsDeltaSize = (pool: Pick<Pool, "refreshPolicy" | "refreshWhenDeltaExceedsPercent">) =>
  pool.refreshPolicy === "none" && pool.refreshWhenDeltaExceedsPercent !== undefined;
