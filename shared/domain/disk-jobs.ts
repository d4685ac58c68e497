/**
 * The jobs that write a desktop's disk: provision, refresh and recompose, each fenced (DESIGN.md
 * §1): the job takes the desktop by raising its generation before it touches the disk, builds the
 * disk in that generation's own file, and makes the desktop AVAILABLE only if the generation is
 * still its own. A duplicate or stale delivery finds the desktop taken and stops; a job that
 * stalls past a later one only ever writes a file nobody uses, and removes it.
 */

import { checkpoint } from "../faults.ts";
import type { CloneJob } from "../messages/clone-job.ts";
import type { Ports } from "../ports/index.ts";
import { desktopFreed, desktopRef, desktopsFreed } from "./common.ts";
import type { DesktopState } from "./desktop-state.ts";
import { bootDesktop, powerOffDesktop, type VmPortNames, type VmPorts } from "./desktop-vms.ts";
import { type DiskJobCaps, type SlotKind, takeSlots } from "./disk-slots.ts";
import { RetryLater } from "./errors.ts";
import { newId } from "./ids.ts";
import { releaseUnusedReplicas } from "./images.ts";
import type { MetricName } from "./metric-catalogue.ts";
import { recordSince } from "./metrics.ts";
import type { Desktop, ImageVersion } from "./model.ts";
import { decideRefresh, needsDeltaSize } from "./refresh-policy.ts";
import { ensureReplica, readyVersion } from "./replica-copies.ts";

/** A disk job runs the desktop's VM too when its worker is a host agent (`host` is set). */
export type DiskJobPorts = Pick<Ports, VmPortNames | "images" | "pools" | "replicas" | "datastores" | "host">;

/** The ports of a host agent, when this worker is one (it runs the desktops' VMs). */
export const vmPorts = (ports: Pick<Ports, VmPortNames> & { host?: Ports["host"] }): VmPorts | undefined =>
  ports.host ? (ports as VmPorts) : undefined;

type Job<K extends CloneJob["kind"]> = Extract<CloneJob, { kind: K }>;

export type { DiskJobCaps } from "./disk-slots.ts";

export interface DiskJobSettings {
  /**
   * Clone-storm caps: at most this many disk jobs of a kind write to one datastore at a time (a
   * registered datastore may set its own), and to the datastores of one host. A job beyond them
   * waits (it comes back a second later) instead of failing on storage contention.
   */
  datastoreCaps: DiskJobCaps;
  hostCaps: DiskJobCaps;
  /** A slot's lease: a worker that dies holding one frees it after this long. */
  slotLeaseMs: number;
  /** A replica copy's lease, renewed while the copy runs: a worker that dies copying frees it after this long. */
  replicaCopyLeaseMs: number;
  /** How long a job waits in-process for another worker's replica copy before it comes back later. */
  replicaWaitMs: number;
}

/** The version a desktop should be on: its pool's (a recompose may have moved it since). */
async function targetVersion(ports: DiskJobPorts, desktop: Desktop) {
  const pool = await ports.pools.get(desktop.tenantId, desktop.poolId);
  const version = await readyVersion(
    ports,
    desktop.tenantId,
    desktop.imageId,
    pool?.imageVersion ?? desktop.imageVersion,
  );
  return { pool, version };
}

/** Writes the disk of the desktop's generation on `version`: a delta on the replica, or a full copy. */
function makeDisk(ports: DiskJobPorts, desktop: Desktop, version: ImageVersion) {
  const target = { ...desktop, imageVersion: version.version };
  return desktop.cloneType === "full"
    ? ports.storage.createFullClone(target)
    : ports.storage.createLinkedClone(target);
}

/** Retries did not help: quarantine it (visible in the pool's counts); the reconciler replaces it. */
const quarantiner =
  (ports: DiskJobPorts, desktop: Desktop, state: DesktopState, when: (err: Error) => boolean) =>
  async (err: Error, generation: number | undefined) => {
    if (err instanceof RetryLater || !when(err)) throw err;
    await ports.desktops.transition(desktop, state, "ERROR", { error: err.message }, { generation });
    return `quarantined: ${err.message}`;
  };

/**
 * The fenced part every disk job shares. Rebuilds the disks of desktops of one pool on one
 * datastore, one after the other in one slot of the datastore's cap (a pool's growth comes in such
 * sets; a refresh or recompose is a set of one). Answers each desktop's outcome, or a single
 * "deferred" when a cap is reached.
 */
async function rebuildDisks(
  ports: DiskJobPorts,
  desktops: Desktop[],
  state: DesktopState,
  settings: DiskJobSettings,
  opts: {
    lastSessionId?: string;
    quarantine: (err: Error) => boolean;
    step: string;
    /** Sends the job again a little later (a cap is reached). */
    defer: () => Promise<void>;
  },
): Promise<string[]> {
  const first = desktops[0];
  if (!first) return [];
  const { version } = await targetVersion(ports, first);
  // The replica first: a wait for another worker's copy must not raise the desktops' generations.
  if (first.cloneType !== "full") {
    try {
      await ensureReplica(ports, version, first.datastoreId, settings, false);
    } catch (err) {
      return Promise.all(
        desktops.map((d) => quarantiner(ports, d, state, opts.quarantine)(err as Error, d.generation)),
      );
    }
  }
  const kind: SlotKind = state === "PROVISIONING" ? "provisioning" : "maintenance";
  const release = await takeSlots(ports, first, kind, settings);
  if (!release) {
    // Come back later without using up a delivery attempt.
    await opts.defer();
    return [`deferred: the ${kind} cap of datastore ${first.datastoreId} (or its host) is reached`];
  }
  const freed: Desktop[] = [];
  const outcomes: string[] = [];
  // A disk that fails (to be retried) leaves the set's later desktops to the retry; those already
  // made are handed over all the same.
  let failure: unknown;
  try {
    for (const desktop of desktops)
      outcomes.push(await rebuildTaken(ports, desktop, state, version, opts, freed));
  } catch (err) {
    failure = err;
  } finally {
    await release();
  }
  await desktopsFreed(ports, freed);
  if (failure) throw failure;
  return outcomes;
}

/**
 * The disk job proper, within its slots: take the desktop, build the disk, hand it over (a
 * desktop without a VM to boot joins `freed`: the caller runs what follows a freed desktop once).
 */
async function rebuildTaken(
  ports: DiskJobPorts,
  desktop: Desktop,
  state: DesktopState,
  version: ImageVersion,
  opts: { lastSessionId?: string; quarantine: (err: Error) => boolean; step: string },
  freed: Desktop[],
): Promise<string> {
  const quarantine = quarantiner(ports, desktop, state, opts.quarantine);
  const generation = await ports.desktops.takeForDiskJob(desktop, state, {
    generation: desktop.generation,
    ...(opts.lastSessionId !== undefined ? { lastSessionId: opts.lastSessionId } : {}),
  });
  if (generation === undefined) return `skipped: another job took desktop ${desktop.desktopId}`;
  const mine = { ...desktop, generation };
  const fence = { generation };
  const ids = { ...desktopRef(desktop), generation };
  await checkpoint(`${opts.step}:before-disk`, ids);
  const vms = vmPorts(ports);
  if (vms) await powerOffDesktop(vms, desktop, opts.lastSessionId);
  try {
    await makeDisk(ports, mine, version);
  } catch (err) {
    return quarantine(err as Error, generation);
  }
  await checkpoint(`${opts.step}:before-available`, ids);
  // With a VM to run, the desktop is AVAILABLE only once its agent says Desktop Ready.
  const moved = await ports.desktops.transition(
    mine,
    state,
    vms ? "STARTING" : "AVAILABLE",
    { imageVersion: version.version, pristineAt: ports.clock.now().toISOString() },
    fence,
  );
  if (!moved) {
    // A later job owns the desktop now: this generation's file is nobody's.
    const now = await ports.desktops.get(desktop.tenantId, desktop.poolId, desktop.desktopId);
    if (!now || now.generation !== generation)
      await ports.storage.deleteDesktopDisk(mine, { onlyGeneration: generation });
    return `skipped: desktop ${desktop.desktopId} moved on while its disk was built`;
  }
  await ports.storage.deleteDesktopDisk(mine, { keepGeneration: generation });
  const figure = diskFigures[opts.step];
  if (figure) recordSince(ports, desktop.tenantId, figure, desktop.updatedAt);
  if (vms) await bootDesktop(vms, { ...mine, datastoreId: desktop.datastoreId, generation });
  else freed.push({ ...mine, state: "AVAILABLE", imageVersion: version.version });
  if (desktop.imageVersion !== version.version)
    await releaseUnusedReplicas(ports, desktop.tenantId, desktop.imageId, desktop.imageVersion);
  return `disk g${generation} on v${version.version}`;
}

/** What each kind of disk job's time is published as (from the desktop's last change to its disk). */
const diskFigures: Record<string, MetricName> = {
  provision: "provisionSeconds",
  refresh: "refreshSeconds",
  recompose: "recomposeSeconds",
};

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
