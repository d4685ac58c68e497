/**
 * The fenced part every disk job shares (DESIGN.md §1): a set of desktops of one pool on one
 * datastore (a pool's growth comes in such sets; a refresh or recompose is a set of one) is taken
 * by raising each desktop's generation, its disks are built one after the other, each in its
 * generation's own file, and the desktops are handed over only where the generation is still their
 * job's. The set's takes and handovers are one write each where they can be.
 */

import { checkpoint } from "../faults.ts";
import type { Ports } from "../ports/index.ts";
import { desktopRef, desktopsFreed } from "./common.ts";
import type { DesktopState } from "./desktop-state.ts";
import { bootDesktop, powerOffDesktop, type VmPortNames, type VmPorts } from "./desktop-vms.ts";
import { type DiskJobCaps, type SlotKind, takeSlots } from "./disk-slots.ts";
import { RetryLater } from "./errors.ts";
import { releaseUnusedReplicas } from "./images.ts";
import type { MetricName } from "./metric-catalogue.ts";
import { recordSince } from "./metrics.ts";
import type { Desktop, ImageVersion } from "./model.ts";
import { ensureReplica, readyVersion } from "./replica-copies.ts";

/** A disk job runs the desktop's VM too when its worker is a host agent (`host` is set). */
export type DiskJobPorts = Pick<Ports, VmPortNames | "images" | "pools" | "replicas" | "datastores" | "host">;

/** The ports of a host agent, when this worker is one (it runs the desktops' VMs). */
export const vmPorts = (ports: Pick<Ports, VmPortNames> & { host?: Ports["host"] }): VmPorts | undefined =>
  ports.host ? (ports as VmPorts) : undefined;

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
export async function targetVersion(ports: DiskJobPorts, desktop: Desktop) {
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
 * Rebuilds the disks of desktops of one pool on one datastore, one after the other in one slot of
 * the datastore's cap. Answers each desktop's outcome, or a single "deferred" when a cap is reached.
 */
export async function rebuildDisks(
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
    /** The target version, when the caller has just read it (targetVersion). */
    version?: ImageVersion;
  },
): Promise<string[]> {
  const first = desktops[0];
  if (!first) return [];
  const version = opts.version ?? (await targetVersion(ports, first)).version;
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
  const outcomes = new Map<string, string>();
  // A disk that fails (to be retried) leaves the set's later desktops to the retry; those already
  // made are handed over all the same.
  let failure: unknown;
  try {
    await rebuildTaken(ports, desktops, state, version, opts, { outcomes, freed });
  } catch (err) {
    failure = err;
  } finally {
    await release();
  }
  await desktopsFreed(ports, freed);
  if (failure) throw failure;
  return desktops.flatMap((d) => outcomes.get(d.desktopId) ?? []);
}

/**
 * A disk made for a desktop of the set, waiting for its handover: its job's own start and end (the
 * set's desktops are built one after the other, each in its own time).
 */
interface Made {
  desktop: Desktop;
  generation: number;
  startedAt: Date;
  doneAt: Date;
}

/** What a set's desktops came to: each one's outcome, and those freed without a VM to boot. */
interface SetResult {
  outcomes: Map<string, string>;
  freed: Desktop[];
}

/**
 * A made disk waits for the set's next ones, to be handed over with them in one write, only while
 * disks are quick (linked clones: milliseconds, a few hundred on a busy machine); after one that
 * took longer than this (a full copy: seconds), what is made is handed over at once.
 */
const handOverAtOnceMs = 1000;

/**
 * The disk job proper, within its slots: take the set's desktops, build their disks one after the
 * other, hand them over (a desktop without a VM to boot joins `freed`: the caller runs what
 * follows a freed desktop once).
 */
async function rebuildTaken(
  ports: DiskJobPorts,
  desktops: Desktop[],
  state: DesktopState,
  version: ImageVersion,
  opts: { lastSessionId?: string; quarantine: (err: Error) => boolean; step: string },
  result: SetResult,
): Promise<void> {
  const expect = opts.lastSessionId !== undefined ? { lastSessionId: opts.lastSessionId } : {};
  const generations = await ports.desktops.takeManyForDiskJob(
    desktops.map((desktop) => ({ desktop, state, expect: { generation: desktop.generation, ...expect } })),
  );
  const vms = vmPorts(ports);
  let made: Made[] = [];
  const handOverMade = async () => {
    const batch = made;
    made = [];
    await handOver(ports, batch, state, version, opts.step, result);
  };
  try {
    for (const [i, desktop] of desktops.entries()) {
      const generation = generations[i];
      if (generation === undefined) {
        result.outcomes.set(desktop.desktopId, `skipped: another job took desktop ${desktop.desktopId}`);
        continue;
      }
      const startedAt = ports.clock.now();
      await checkpoint(`${opts.step}:before-disk`, { ...desktopRef(desktop), generation });
      if (vms) await powerOffDesktop(vms, desktop, opts.lastSessionId);
      try {
        await makeDisk(ports, { ...desktop, generation }, version);
      } catch (err) {
        const quarantine = quarantiner(ports, desktop, state, opts.quarantine);
        result.outcomes.set(desktop.desktopId, await quarantine(err as Error, generation));
        continue;
      }
      const doneAt = ports.clock.now();
      made.push({ desktop, generation, startedAt, doneAt });
      if (doneAt.getTime() - startedAt.getTime() > handOverAtOnceMs) await handOverMade();
    }
  } finally {
    await handOverMade();
  }
}

/** Makes the desktops whose disks are made AVAILABLE (STARTING with a VM), if their generations are still their own. */
async function handOver(
  ports: DiskJobPorts,
  made: Made[],
  state: DesktopState,
  version: ImageVersion,
  step: string,
  result: SetResult,
): Promise<void> {
  if (made.length === 0) return;
  for (const { desktop, generation } of made)
    await checkpoint(`${step}:before-available`, { ...desktopRef(desktop), generation });
  // With a VM to run, the desktop is AVAILABLE only once its agent says Desktop Ready.
  const vms = vmPorts(ports);
  const moved = await ports.desktops.handOver(
    made.map((m) => ({
      desktop: m.desktop,
      from: state,
      to: vms ? "STARTING" : "AVAILABLE",
      changes: {
        imageVersion: version.version,
        pristineAt: m.doneAt.toISOString(),
        diskJobStartedAt: m.startedAt.toISOString(),
      },
      fence: { generation: m.generation },
    })),
  );
  const left = new Set<number>();
  for (const [i, { desktop, generation }] of made.entries()) {
    const mine = { ...desktop, generation };
    if (!moved[i]) {
      // A later job owns the desktop now: this generation's file is nobody's.
      const now = await ports.desktops.get(desktop.tenantId, desktop.poolId, desktop.desktopId);
      if (!now || now.generation !== generation)
        await ports.storage.deleteDesktopDisk(mine, { onlyGeneration: generation });
      result.outcomes.set(
        desktop.desktopId,
        `skipped: desktop ${desktop.desktopId} moved on while its disk was built`,
      );
      continue;
    }
    await ports.storage.deleteDesktopDisk(mine, { keepGeneration: generation });
    const figure = diskFigures[step];
    if (figure) recordSince(ports, desktop.tenantId, figure, desktop.updatedAt);
    if (vms) await bootDesktop(vms, { ...mine, datastoreId: desktop.datastoreId, generation });
    else result.freed.push({ ...mine, state: "AVAILABLE", imageVersion: version.version });
    if (desktop.imageVersion !== version.version) left.add(desktop.imageVersion);
    result.outcomes.set(desktop.desktopId, `disk g${generation} on v${version.version}`);
  }
  const { tenantId, imageId } = made[0]?.desktop ?? {};
  if (tenantId && imageId) for (const v of left) await releaseUnusedReplicas(ports, tenantId, imageId, v);
}

/** What each kind of disk job's time is published as (from the desktop's last change to its disk). */
const diskFigures: Record<string, MetricName> = {
  provision: "provisionSeconds",
  refresh: "refreshSeconds",
  recompose: "recomposeSeconds",
};
