/**
 * Jobs on the clone-jobs queue and on each host's datastore queue: one schema shared by every
 * producer (api, logoff, reconciler, workers, host agents) and the consumers (the clone worker
 * for datastores without a host, the host agent for its own). Disk jobs build desktops' disks;
 * power jobs act on the VM a host runs for a desktop. Every job is idempotent; the consumer
 * re-checks state.
 */
import { z } from "zod";
import { timeoutReasons } from "../domain/model.ts";

/** Desktops one `provision-desktops` job makes at most (a pool's growth is cut into such jobs). */
export const provisionBatchMax = 5;

/** A desktop, and the datastore its disk is on: the queue a job goes to follows the datastore. */
const desktopRef = {
  tenantId: z.string().min(1),
  poolId: z.string().min(1),
  desktopId: z.string().min(1),
  datastoreId: z.string().min(1).optional(),
};

const sessionRef = { sessionId: z.string().min(1), userId: z.string().min(1) };

export const cloneJobSchema = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("import-image-version"),
    tenantId: z.string().min(1),
    imageId: z.string().min(1),
    version: z.number().int().positive(),
  }),
  z.object({
    kind: z.literal("prepare-replica"),
    tenantId: z.string().min(1),
    imageId: z.string().min(1),
    version: z.number().int().positive(),
    datastoreId: z.string().min(1),
  }),
  // Pool jobs.
  /** Grows or shrinks a self-sizing pool to what its users need now. */
  z.object({ kind: z.literal("size-pool"), tenantId: z.string().min(1), poolId: z.string().min(1) }),
  /** Hands the pool's free desktops to its waiting tickets, oldest first. */
  z.object({ kind: z.literal("serve-logons"), tenantId: z.string().min(1), poolId: z.string().min(1) }),
  // Disk jobs.
  z.object({ kind: z.literal("provision-desktop"), ...desktopRef }),
  /**
   * A pool's growth on one datastore, a few desktops at a time: their disks are made one after the
   * other in one slot of the datastore's provisioning cap, with the job's reads done once.
   */
  z.object({
    kind: z.literal("provision-desktops"),
    tenantId: z.string().min(1),
    poolId: z.string().min(1),
    datastoreId: z.string().min(1),
    desktopIds: z.array(z.string().min(1)).min(1).max(provisionBatchMax),
  }),
  /** Moves a RECOMPOSING desktop onto its pool's current image version. */
  z.object({ kind: z.literal("recompose-desktop"), ...desktopRef }),
  z.object({ kind: z.literal("replace-desktop"), ...desktopRef }),
  z.object({ kind: z.literal("refresh-desktop"), ...desktopRef, sessionId: z.string().min(1) }),
  z.object({ kind: z.literal("delete-desktop"), ...desktopRef }),
  /**
   * The reconciler's sweep of one datastore, run where its files are: removes disk files no
   * desktop owns and replaces free desktops whose disk is gone; touches nothing newer than `olderThan`.
   */
  z.object({
    kind: z.literal("sweep-datastore"),
    datastoreId: z.string().min(1),
    olderThan: z.iso.datetime(),
  }),
  // Power jobs (a host runs the desktop's VM).
  /** Boots the VM of a STARTING desktop's disk generation. */
  z.object({ kind: z.literal("start-desktop"), ...desktopRef, generation: z.number().int().min(0) }),
  /** Powers off the VM of a free desktop (AVAILABLE -> STOPPED): the pool keeps fewer running. */
  z.object({ kind: z.literal("stop-desktop"), ...desktopRef, generation: z.number().int().min(0) }),
  /** Prepares a session's connection: its one-time VNC password, and the user shown in the desktop. */
  z.object({
    kind: z.literal("connect-session"),
    ...desktopRef,
    ...sessionRef,
    password: z.string().min(1).max(8),
    expiresAt: z.iso.datetime(),
  }),
  /** Hot-plugs the session's user-data disk into the desktop's VM, once the disk is attached. */
  z.object({ kind: z.literal("plug-user-data"), ...desktopRef, ...sessionRef }),
  /** Tells the user in the desktop that a timeout will log the session off at `logoffAt`. */
  z.object({
    kind: z.literal("warn-session"),
    ...desktopRef,
    sessionId: z.string().min(1),
    reason: z.enum(timeoutReasons),
    logoffAt: z.iso.datetime(),
  }),
  /**
   * Looks at a session's timeout for `reason`, whose clock started at `since` (delayed until it is
   * due; no datastore: it goes to the clone-jobs queue, never to a host's).
   */
  z.object({
    kind: z.literal("check-session-timeout"),
    tenantId: z.string().min(1),
    poolId: z.string().min(1),
    desktopId: z.string().min(1),
    sessionId: z.string().min(1),
    reason: z.enum(timeoutReasons),
    since: z.iso.datetime(),
  }),
  /** A pool's timeouts changed: every running session of it gets the checks they call for. */
  z.object({
    kind: z.literal("schedule-session-timeouts"),
    tenantId: z.string().min(1),
    poolId: z.string().min(1),
  }),
  /** Takes a picture of the desktop's screen for a waiting request. */
  z.object({
    kind: z.literal("screenshot"),
    ...desktopRef,
    sessionId: z.string().min(1),
    requestId: z.string().min(1),
  }),
]);

export type CloneJob = z.infer<typeof cloneJobSchema>;
export type DesktopJob = Extract<CloneJob, { desktopId: string }>;

/** The jobs a host's agent does itself: power jobs never run where there is no hypervisor. */
export const powerJobKinds = [
  "start-desktop",
  "stop-desktop",
  "connect-session",
  "plug-user-data",
  "screenshot",
  "warn-session",
] as const;
export type PowerJob = Extract<CloneJob, { kind: (typeof powerJobKinds)[number] }>;
