/**
 * The datastore sweep (the reconciler asks for it; the worker that serves the datastore runs it,
 * since only it can see a host-local datastore's files): disk files no desktop owns are removed,
 * and free desktops whose disk is gone are quarantined and replaced.
 */
import type { CloneJob } from "../messages/clone-job.ts";
import type { DesktopDiskFile, Ports } from "../ports/index.ts";
import { desktopRef } from "./common.ts";
import { isTransitional } from "./desktop-state.ts";
import type { Desktop } from "./model.ts";
import { recordRepair } from "./repairs.ts";

export type SweepPorts = Pick<Ports, "storage" | "desktops" | "jobs" | "metrics">;
type SweepJob = Extract<CloneJob, { kind: "sweep-datastore" }>;

/**
 * The identity check: a file is nobody's when its desktop is gone, lives on another datastore, or
 * is at rest (no job in flight: not in a transitional state) on another generation, or when it is
 * a temporary file of a write that ended. A desktop id is never reused and a generation only ever
 * rises, so a file found nobody's stays nobody's; a desktop in a transitional state keeps its
 * files, since its job may be writing or about to use them.
 */
export function ownsNothing(file: DesktopDiskFile, desktop: Desktop | undefined): boolean {
  if (!desktop || desktop.datastoreId !== file.datastoreId) return true;
  if (isTransitional(desktop.state)) return false;
  return file.partial || (desktop.generation ?? 0) !== file.generation;
}

/** States in which a desktop's disk of its generation must be in place, and that may go to ERROR. */
const diskHolding = new Set<Desktop["state"]>(["AVAILABLE", "STARTING"]);

export async function sweepDatastore(ports: SweepPorts, job: SweepJob): Promise<string> {
  const { datastoreId, olderThan } = job;
  const files = await ports.storage.listDesktopDisks(datastoreId);
  const byPool = new Map<string, DesktopDiskFile[]>();
  for (const f of files) {
    const key = `${f.tenantId}/${f.poolId}`;
    byPool.set(key, [...(byPool.get(key) ?? []), f]);
  }
  let removed = 0;
  let replaced = 0;
  for (const poolFiles of byPool.values()) {
    const { tenantId, poolId } = poolFiles[0] as DesktopDiskFile;
    const desktops = new Map((await ports.desktops.list(tenantId, poolId)).map((d) => [d.desktopId, d]));
    for (const file of poolFiles) {
      // A young file may be a job's write in progress (its desktop's record may be a moment old).
      if (file.modifiedAt >= olderThan || !ownsNothing(file, desktops.get(file.desktopId))) continue;
      // Checked again on the record as it is now: the listing is a few moments old.
      if (!ownsNothing(file, await ports.desktops.get(tenantId, poolId, file.desktopId))) continue;
      await ports.storage.removeDesktopDiskFile(file);
      removed++;
      recordRepair(ports, "orphan-disk", {
        tenantId,
        poolId,
        desktopId: file.desktopId,
        datastoreId,
        generation: file.generation,
        file: file.name,
      });
    }
    // Desktops of the pool on this datastore that should have a disk here and have none.
    for (const d of desktops.values()) {
      if (d.datastoreId !== datastoreId || !diskHolding.has(d.state) || d.updatedAt >= olderThan) continue;
      if (await ports.storage.hasDesktopDisk(d)) continue;
      // Fenced: a desktop that moved on since it was read (or got a new disk) is left alone.
      const fence = { generation: d.generation };
      if (!(await ports.desktops.transition(d, d.state, "ERROR", { error: "its disk is gone" }, fence)))
        continue;
      await ports.jobs.send([{ kind: "replace-desktop", ...desktopRef(d) }]);
      replaced++;
      recordRepair(ports, "diskless-desktop", {
        tenantId,
        poolId,
        desktopId: d.desktopId,
        datastoreId,
        generation: d.generation ?? 0,
      });
    }
  }
  return `swept ${datastoreId}: ${files.length} files, ${removed} removed, ${replaced} diskless desktops replaced`;
}
