/**
 * The jobs that write a desktop's disk: provision, refresh and recompose, each fenced (DESIGN.md
 * §1): the job takes the desktop by raising its generation before it touches the disk, builds the
 * disk in that generation's own file, and makes the desktop AVAILABLE only if the generation is
 * still its own. A duplicate or stale delivery finds the desktop taken and stops; a job that
 * stalls past a later one only ever writes a file nobody uses, and removes it.
 */

import type { CloneJob } from "../messages/clone-job.ts";
import { desktopFreed, desktopRef } from "./common.ts";
import { bootDesktop, powerOffDesktop } from "./desktop-vms.ts";
import {
  type DiskJobPorts,
  type DiskJobSettings,
  rebuildDisks,
  targetVersion,
  vmPorts,
} from "./disk-rebuild.ts";
import { newId } from "./ids.ts";
import { releaseUnusedReplicas } from "./images.ts";
import type { Desktop } from "./model.ts";
import { decideRefresh, needsDeltaSize } from "./refresh-policy.ts";

export type { DiskJobCaps, DiskJobPorts, DiskJobSettings } from "./disk-rebuild.ts";
export { vmPorts } from "./disk-rebuild.ts";

type Job<K extends CloneJob["kind"]> = Extract<CloneJob, { kind: K }>;

/**
 * Provisions a pool's new desktops (a `provision-desktops` set, or one desktop the reconciler or a
 * replacement sends again): those still PROVISIONING, one datastore's set at a time.
 */
export async function provisionDesktops(
  ports: DiskJobPorts,
  job: Job<"provision-desktops"> | Job<"provision-desktop">,
  settings: DiskJobSettings,
  lastAttempt: boolean,
) {
  const ids = job.kind === "provision-desktop" ? [job.desktopId] : job.desktopIds;
  const found = await ports.desktops.getMany(job.tenantId, job.poolId, ids);
  const todo = found.filter((d) => d.state === "PROVISIONING");
  if (todo.length === 0)
    return `skipped: ${found.map((d) => `${d.desktopId} is ${d.state}`).join(", ") || "desktop(s) gone"}`;
  const outcomes: string[] = [];
  for (const datastoreId of new Set(todo.map((d) => d.datastoreId))) {
    const set = todo.filter((d) => d.datastoreId === datastoreId);
    const done = await rebuildDisks(ports, set, "PROVISIONING", settings, {
      quarantine: () => lastAttempt,
      step: "provision",
      defer: () => ports.jobs.send([job], { delaySeconds: 1 }),
    });
    outcomes.push(...done);
    // The whole job comes back later: what is done by then is skipped.
    if (done[0]?.startsWith("deferred")) break;
  }
  return outcomes.map((o) => (o.startsWith("disk") ? `provisioned (${o})` : o)).join("; ");
}

export async function refreshDesktop(
  ports: DiskJobPorts,
  job: Job<"refresh-desktop">,
  settings: DiskJobSettings,
) {
  const desktop = await ports.desktops.get(job.tenantId, job.poolId, job.desktopId);
  if (desktop?.state !== "REFRESHING" || desktop.lastSessionId !== job.sessionId) {
    return `skipped: desktop is ${desktop?.state ?? "gone"}`;
  }
  const { pool, version } = await targetVersion(ports, desktop);
  const decision = pool
    ? decideRefresh(pool, desktop, {
        ...(needsDeltaSize(pool) ? { deltaBytes: await ports.storage.deltaBytes(desktop) } : {}),
        replicaBytes: version.fileBytes ?? 0,
        now: ports.clock.now(),
      })
    : "refresh";
  const fence = { generation: desktop.generation };
  if (decision === "keep") {
    const vms = vmPorts(ports);
    if (!vms) {
      const moved = await ports.desktops.transition(desktop, "REFRESHING", "AVAILABLE", {}, fence);
      if (moved) await desktopFreed(ports, desktop);
      return moved ? "kept as it was (refresh policy)" : "skipped: desktop moved";
    }
    // The disk is kept, the VM is not: a VNC client still connected (QEMU keeps those when the
    // password changes) or a process left running must not outlive the session. The write comes
    // first, so that a duplicate job never stops the VM the winner has just started.
    if (!(await ports.desktops.transition(desktop, "REFRESHING", "STARTING", {}, fence)))
      return "skipped: desktop moved";
    await powerOffDesktop(vms, desktop, job.sessionId);
    await bootDesktop(vms, { ...desktop, generation: desktop.generation ?? 0 });
    return "kept its disk (refresh policy); its VM restarts";
  }
  if (decision === "replace") return replaceDesktop(ports, desktop);
  // Discarding the delta is what makes the next user's desktop pristine (invariant 2); on a
  // recompose the new disk is on the pool's new version.
  const [outcome = ""] = await rebuildDisks(ports, [desktop], "REFRESHING", settings, {
    version,
    lastSessionId: job.sessionId,
    quarantine: () => false,
    step: "refresh",
    defer: () => ports.jobs.send([job], { delaySeconds: 1 }),
  });
  return outcome.startsWith("disk")
    ? `${decision === "recompose" ? "recomposed" : "refreshed"} (${outcome})`
    : outcome;
}

export async function recomposeDesktop(
  ports: DiskJobPorts,
  job: Job<"recompose-desktop">,
  settings: DiskJobSettings,
) {
  const desktop = await ports.desktops.get(job.tenantId, job.poolId, job.desktopId);
  if (desktop?.state !== "RECOMPOSING") return `skipped: desktop is ${desktop?.state ?? "gone"}`;
  // One desktop's failure must not stop the pool's recompose: quarantine it, go on.
  const [outcome = ""] = await rebuildDisks(ports, [desktop], "RECOMPOSING", settings, {
    quarantine: () => true,
    step: "recompose",
    defer: () => ports.jobs.send([job], { delaySeconds: 1 }),
  });
  return outcome.startsWith("disk") ? `recomposed (${outcome})` : outcome;
}

/** A quarantined desktop is replaced by a new one in the same slot (the reconciler asks). */
export async function replaceErrored(ports: DiskJobPorts, job: Job<"replace-desktop">) {
  const desktop = await ports.desktops.get(job.tenantId, job.poolId, job.desktopId);
  if (desktop?.state !== "ERROR") return `skipped: desktop is ${desktop?.state ?? "gone"}`;
  return replaceDesktop(ports, desktop);
}

/**
 * The desktop is destroyed and a new one provisioned in its place, keeping its slot and its
 * reservation (refreshPolicy `delete`, and quarantined desktops).
 */
async function replaceDesktop(ports: DiskJobPorts, desktop: Desktop) {
  const fence = { generation: desktop.generation };
  if (!(await ports.desktops.transition(desktop, desktop.state, "DELETING", {}, fence)))
    return `skipped: desktop moved while ${desktop.state.toLowerCase()}`;
  const vms = vmPorts(ports);
  if (vms) await powerOffDesktop(vms, desktop, desktop.lastSessionId);
  await ports.storage.deleteDesktopDisk(desktop);
  const {
    sessionId: _s,
    userId: _u,
    sessionStartedAt: _t,
    lastSessionId: _l,
    pristineAt: _p,
    error: _e,
    generation: _g,
    resentAt: _r,
    ...rest
  } = desktop;
  const now = ports.clock.now().toISOString();
  const fresh: Desktop = {
    ...rest,
    desktopId: newId("dsk"),
    state: "PROVISIONING",
    createdAt: now,
    updatedAt: now,
  };
  // A redelivery finds the old desktop gone and stops here; the reconciler re-sends provisioning.
  if (!(await ports.desktops.replace(desktop, fresh))) return "skipped: already replaced";
  await ports.jobs.send([{ kind: "provision-desktop", ...desktopRef(fresh) }]);
  return `replaced by ${fresh.desktopId}`;
}

export async function deleteDesktop(ports: DiskJobPorts, job: Job<"delete-desktop">) {
  const desktop = await ports.desktops.get(job.tenantId, job.poolId, job.desktopId);
  if (desktop && desktop.state !== "DELETING") return `skipped: desktop is ${desktop.state}`;
  if (desktop) {
    // A pool deleted in a session: the user's data still leaves the VM and is committed.
    const vms = vmPorts(ports);
    if (vms) await powerOffDesktop(vms, desktop, desktop.lastSessionId);
    await ports.storage.deleteDesktopDisk(desktop);
    await ports.desktops.remove(desktop);
    await releaseUnusedReplicas(ports, desktop.tenantId, desktop.imageId, desktop.imageVersion);
  }
  const pool = await ports.pools.get(job.tenantId, job.poolId);
  if (pool?.state === "DELETING" && (await ports.desktops.list(job.tenantId, job.poolId)).length === 0) {
    await ports.pools.remove(job.tenantId, job.poolId);
  }
  return "deleted";
}
