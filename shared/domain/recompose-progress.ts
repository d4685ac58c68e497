import type { Desktop, Pool } from "./model.ts";

/** Recompose progress, counted from the desktops themselves (no counter to drift). */
export function recomposeProgress(
  recompose: NonNullable<Pool["recompose"]>,
  desktops: Pick<Desktop, "state" | "imageVersion">[],
) {
  let done = 0;
  let pending = 0;
  let failed = 0;
  for (const d of desktops) {
    if (d.state === "DELETING") continue;
    if (d.state === "ERROR") failed += 1;
    else if (d.imageVersion === recompose.toVersion && (d.state === "AVAILABLE" || d.state === "ASSIGNED"))
      done += 1;
    else pending += 1;
  }
  return { ...recompose, done, pending, failed };
}
