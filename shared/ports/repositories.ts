/** The control plane's records, one repository per aggregate (adapters: DynamoDB). */
import type { DesktopState } from "../domain/desktop-state.ts";
import type {
  Datastore,
  DatastoreUsage,
  Desktop,
  Image,
  ImageVersion,
  LogonTicket,
  Pool,
  PoolSizingSettings,
  Replica,
  Session,
  SessionEnding,
  SessionTimeouts,
  Tenant,
  TimeoutWarning,
} from "../domain/model.ts";
import type { TenantCharge } from "./quotas.ts";

export interface TenantRepository {
  create(tenant: Tenant, apiKeyHash: string): Promise<void>;
  findByApiKeyHash(apiKeyHash: string): Promise<Tenant | undefined>;
  get(tenantId: string): Promise<Tenant | undefined>;
}

export interface ImageRepository {
  /** Stores the image and counts it in its tenant's usage; false, and nothing written, at `maxImages`. */
  createImage(image: Image, maxImages: number): Promise<boolean>;
  getImage(tenantId: string, imageId: string): Promise<Image | undefined>;
  listImages(tenantId: string): Promise<Image[]>;
  /** Allocates the next version number atomically and stores the version as PUBLISHING. */
  addVersion(
    tenantId: string,
    imageId: string,
    make: (version: number) => ImageVersion,
  ): Promise<ImageVersion>;
  getVersion(tenantId: string, imageId: string, version: number): Promise<ImageVersion | undefined>;
  listVersions(tenantId: string, imageId: string): Promise<ImageVersion[]>;
  completeVersion(
    tenantId: string,
    imageId: string,
    version: number,
    result: Pick<ImageVersion, "state" | "sha256" | "virtualSizeBytes" | "fileBytes" | "error" | "readyAt">,
  ): Promise<void>;
  retireVersion(tenantId: string, imageId: string, version: number, at: string): Promise<void>;
  /** Versions of every tenant still PUBLISHING since before `createdBefore` (reconciler only). */
  listPublishingBefore(createdBefore: string): Promise<ImageVersion[]>;
  removeVersion(tenantId: string, imageId: string, version: number): Promise<void>;
}

/** Bytes to reserve on a datastore, refused when its provisioned bytes would pass `limitBytes`. */
export interface Reservation {
  datastoreId: string;
  bytes: number;
  limitBytes: number;
}

/** A pool's logon queue (model: LogonTicket). */
export interface LogonQueueRepository {
  /** How many tickets of the pool wait. */
  waiting(tenantId: string, poolId: string): Promise<number>;
  /** The user's latest ticket in the pool (waiting or settled). */
  userTicket(tenantId: string, poolId: string, userId: string): Promise<LogonTicket | undefined>;
  /**
   * Queues the ticket unless `limit` tickets already wait (full), or the user's latest ticket is no
   * longer `replaces` (raced: another logon of the user queued one first). Without `replaces`, the
   * user must hold no ticket whose time runs beyond this one's making (raced otherwise: read it).
   * With `unlessOn`, nor any session in the pool: "on" when the user's lock is there. "behind": the
   * server already serves tickets past this one's id (its write came late): it needs a later id.
   */
  enqueue(
    ticket: LogonTicket,
    limit: number,
    replaces: string | undefined,
    opts?: { unlessOn?: boolean },
  ): Promise<"queued" | "full" | "raced" | "on" | "behind">;
  /** From now on no ticket with an id up to `ticketId` joins the line (the server's page). */
  fenceServing(tenantId: string, poolId: string, ticketId: string): Promise<void>;
  get(tenantId: string, poolId: string, ticketId: string): Promise<LogonTicket | undefined>;
  /** The oldest waiting tickets, oldest first. */
  oldestWaiting(tenantId: string, poolId: string, limit: number): Promise<LogonTicket[]>;
  /** How many tickets wait ahead of this one. */
  waitingBefore(tenantId: string, poolId: string, ticketId: string): Promise<number>;
  /** A waiting ticket is served or expires (false: it was settled already). */
  settle(ticket: LogonTicket, state: "SERVED" | "EXPIRED", at: string, sessionId?: string): Promise<boolean>;
  /** Tickets served together (each settled once: one already settled is left as it is). */
  settleServed(served: { ticket: LogonTicket; at: string; sessionId: string }[]): Promise<void>;
  /** A pool-wide lease (one sizer, one ticket server at a time): whether `holder` has it now. */
  /** Takes the pool's named lease for `ms`; answers whether it did, and until when the lease is held. */
  lease(
    tenantId: string,
    poolId: string,
    name: string,
    holder: string,
    ms: number,
  ): Promise<{ taken: boolean; until: number }>;
  release(tenantId: string, poolId: string, name: string, holder: string): Promise<void>;
}

export interface DatastoreRepository {
  /** Registers a datastore, or updates its path, capacity and overcommit. */
  put(datastore: Datastore): Promise<void>;
  get(datastoreId: string): Promise<Datastore | undefined>;
  /** Registered datastores with their reserved bytes (one query). */
  list(): Promise<DatastoreUsage[]>;
  /** Reserved bytes of a datastore that may not be registered (the default local one). */
  provisionedBytes(datastoreId: string): Promise<number>;
  /**
   * A lease on one of `slots` slots of a scope (a datastore's or a host's disk jobs of one kind):
   * the slot's number, or undefined when all are held. An expired lease is free.
   */
  acquireSlot(scope: string, holder: string, slots: number, leaseMs: number): Promise<number | undefined>;
  /** Frees the slot if `holder` still holds it. */
  releaseSlot(scope: string, slot: number, holder: string): Promise<void>;
  /**
   * Takes the turn of a periodic task (`sweep:<datastore>`, `recount`) at `at` when the last one is
   * older than `everyMs` (one conditional write): whichever reconciler run gets it does the task.
   */
  takeTurn(task: string, at: Date, everyMs: number): Promise<boolean>;
  /**
   * The recount of a datastore's reservations: the usage counter read `seen` (unchanged during the
   * count) while its desktops add up to `counted`. A difference is only noted the first time; the
   * counter is set to `counted` when the same difference is found again at least `confirmAfterMs`
   * later with the counter still at `seen` (nothing reserved or released meanwhile: a leak, not a
   * write in flight). "in-step" when they agree.
   */
  recount(
    datastoreId: string,
    seen: number,
    counted: number,
    at: Date,
    confirmAfterMs: number,
  ): Promise<"in-step" | "noted" | "fixed">;
}

export interface ReplicaRepository {
  /** Records a replica; `created` counts an actual write of its file. */
  record(replica: Omit<Replica, "creations">, created: boolean): Promise<void>;
  list(tenantId: string, imageId?: string, version?: number): Promise<Replica[]>;
  remove(replica: Pick<Replica, "tenantId" | "imageId" | "version" | "datastoreId">): Promise<void>;
  /**
   * A lease on copying one version's replica onto one datastore: the worker that holds it copies,
   * the others wait for it instead of copying the same image again. False while another holds it.
   */
  leaseCopy(replica: ReplicaRef, holder: string, leaseMs: number): Promise<boolean>;
  releaseCopy(replica: ReplicaRef, holder: string): Promise<void>;
}

export type ReplicaRef = Pick<Replica, "tenantId" | "imageId" | "version" | "datastoreId">;

export type AssignResult =
  /** `desktop`: the desktop as the claim left it, when the write answered it (not for dedicated pools). */
  | { outcome: "assigned"; session: Session; desktop?: Desktop }
  | { outcome: "desktop-taken" }
  | { outcome: "user-has-session" };

export type EndSessionResult =
  | {
      outcome: "ended";
      desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId"> & { datastoreId?: string | undefined };
    }
  | { outcome: "not-active" };

export interface PoolRepository {
  /**
   * Stores the pool with its datastore reservations in one transaction, then its desktops
   * (PROVISIONING), charging the tenant's usage in the same transaction. False, and nothing
   * written, when a datastore no longer has the room or the charge would pass the tenant's quota.
   */
  create(
    pool: Pool,
    desktops: Desktop[],
    reservations: Reservation[],
    charge: TenantCharge,
  ): Promise<boolean>;
  /** Grows a pool from `pool.size` to `newSize` under the same rule as `create`. */
  grow(
    pool: Pool,
    newSize: number,
    desktops: Desktop[],
    reservations: Reservation[],
    charge: TenantCharge,
  ): Promise<boolean>;
  /** Points the pool at a new version and records the recompose (conditional on ACTIVE). */
  startRecompose(
    tenantId: string,
    poolId: string,
    imageVersion: number,
    recompose: Pool["recompose"],
  ): Promise<void>;
  get(tenantId: string, poolId: string): Promise<Pool | undefined>;
  list(tenantId: string): Promise<Pool[]>;
  /** Every tenant's pools (the reconciler only; an index query, eventually consistent). */
  listAll(): Promise<Pool[]>;
  markDeleting(tenantId: string, poolId: string): Promise<void>;
  /** Replaces the pool's session timeouts (undefined: none); false when the pool is not ACTIVE. */
  setSessionTimeouts(
    tenantId: string,
    poolId: string,
    timeouts: SessionTimeouts | undefined,
  ): Promise<boolean>;
  remove(tenantId: string, poolId: string): Promise<void>;
  /** Sets the pool's sizing settings (an undefined one is removed). */
  setSizing(tenantId: string, poolId: string, sizing: PoolSizingSettings): Promise<void>;
}

export interface DesktopRepository {
  get(tenantId: string, poolId: string, desktopId: string): Promise<Desktop | undefined>;
  /** How many of the pool's desktops are ASSIGNED (its users on), counted by the table. */
  countAssigned(tenantId: string, poolId: string): Promise<number>;
  /** These desktops of the pool (in no particular order; those gone are left out). */
  getMany(tenantId: string, poolId: string, desktopIds: string[]): Promise<Desktop[]>;
  list(tenantId: string, poolId: string): Promise<Desktop[]>;
  /** Up to `limit` AVAILABLE desktops, starting at a random point so concurrent logons spread out. */
  findFree(tenantId: string, poolId: string, limit: number): Promise<Desktop[]>;
  /**
   * Conditional on the current state being `from`; false when it was not. A desktop with an
   * `assignedUserId` (dedicated) goes AVAILABLE without joining the free index.
   */
  transition(
    desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "assignedUserId">,
    from: DesktopState,
    to: DesktopState,
    changes?: Handover["changes"],
    fence?: DiskFence,
  ): Promise<boolean>;
  /**
   * A disk job takes the desktop: conditional on its state and on `expect` (the generation it
   * read and, for a refresh, the session that ended), it raises the generation. Answers the new
   * generation, or undefined when another job or a state change got there first.
   */
  takeForDiskJob(
    desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId">,
    state: DesktopState,
    expect: DiskFence & { lastSessionId?: string },
  ): Promise<number | undefined>;
  /**
   * `takeForDiskJob` for a set of desktops (a pool's growth on one datastore), in one write where it
   * can: answers each one's new generation, or undefined for one another job or a state change got
   * first (the others are taken all the same).
   */
  takeManyForDiskJob(takes: DiskTake[]): Promise<(number | undefined)[]>;
  /**
   * Fenced transitions of a set's desktops, in one write where it can: answers whether each moved
   * (one taken by a later job meanwhile does not; the others move all the same).
   */
  handOver(handovers: Handover[]): Promise<boolean[]>;
  /** Records that the host prepared the session's connection (while the desktop holds it). */
  markConnected(
    desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId">,
    sessionId: string,
  ): Promise<boolean>;
  /** Desktops of every tenant on these datastores, in these states (hosts and the reconciler only). */
  listOnDatastores(datastoreIds: string[], states: DesktopState[]): Promise<Desktop[]>;
  /** Records that the reconciler re-sent the desktop's job now (once per stale period). */
  markResent(
    desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "state">,
    at: string,
  ): Promise<void>;
  /** Removes the desktop and releases its reservation on its datastore and its tenant's charge, once. */
  remove(
    desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "datastoreId" | "provisionedBytes">,
  ): Promise<void>;
  /** A DELETING desktop gives way to a fresh PROVISIONING one, keeping its reservation. */
  replace(old: Pick<Desktop, "tenantId" | "poolId" | "desktopId">, fresh: Desktop): Promise<boolean>;
  /** AVAILABLE desktops of every tenant on one datastore (operator rebalance only). */
  listFreeOnDatastore(datastoreId: string): Promise<Desktop[]>;
  /**
   * Desktops of every tenant in a transitional state or ERROR, neither updated nor re-sent since
   * `updatedBefore` (reconciler only; a query of the sparse watch index, never a scan).
   */
  listStuck(updatedBefore: string): Promise<Desktop[]>;
  /** ASSIGNED desktops of every tenant (reconciler only: it checks each holds its user's lock). */
  listAssigned(): Promise<Desktop[]>;
}

/** The generation a disk job read (undefined: the desktop has never been fenced). */
export interface DiskFence {
  generation: number | undefined;
}

/** One desktop of a disk job's take: what the job read of it (see `takeForDiskJob`). */
export interface DiskTake {
  desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId">;
  state: DesktopState;
  expect: DiskFence & { lastSessionId?: string };
}

/** One desktop of a disk job's handover: a transition fenced by the generation its job took. */
export interface Handover {
  desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "assignedUserId">;
  from: DesktopState;
  to: DesktopState;
  changes?: Partial<
    Pick<Desktop, "error" | "lastSessionId" | "imageVersion" | "pristineAt" | "diskJobStartedAt" | "console">
  >;
  fence: DiskFence;
}

export interface SessionRepository {
  get(tenantId: string, sessionId: string): Promise<Session | undefined>;
  /** The user's active session in the pool: their lock, once its desktop holds it. */
  findActive(tenantId: string, poolId: string, userId: string): Promise<Session | undefined>;
  /**
   * A lock whose desktop does not hold its session: "pending" while a logon may still be
   * claiming, "released" once it was stale and has been removed.
   */
  releaseStaleLock(
    tenantId: string,
    poolId: string,
    userId: string,
  ): Promise<"none" | "active" | "pending" | "released">;
  /**
   * Claims the session's desktop and takes the user's per-pool lock (at most one active session
   * per user and pool). With `dedicate`, the desktop also becomes the user's own (dedicated pools,
   * first logon), all in one transaction.
   */
  assign(session: Session, opts?: { dedicate?: boolean }): Promise<AssignResult>;
  /** Dedicated pools: the desktop id a user owns, if any. */
  ownedDesktop(tenantId: string, poolId: string, userId: string): Promise<string | undefined>;
  /**
   * One atomic write: session ACTIVE -> ENDED, desktop ASSIGNED -> REFRESHING, and the user's lock
   * released when it names this session (a session whose lock is gone still ends).
   */
  end(session: Session, endedAt: string, endedBy: SessionEnding): Promise<EndSessionResult>;
  /** Users' locks of every tenant taken before `startedBefore` (reconciler only; an index query). */
  listLocksBefore(startedBefore: string): Promise<Session[]>;
  /**
   * Ends a session whose desktop no longer exists: its lock goes and its ENDED record is written,
   * only if the desktop is still gone and the lock still names it. Answers whether it did.
   */
  endWithoutDesktop(lock: Session, endedAt: string, endedBy: SessionEnding): Promise<boolean>;
  /**
   * Records what the desktop agent reported at `reportedAt` about the session (while its desktop
   * holds it): disconnected since a time or connected again (null), idle since a time or active
   * again (null). A spell already recorded keeps its start. Not applied, and nothing written, when
   * the session is not active or a later report of the same kind was recorded already (events come
   * at least once and out of order). `started`: this report began the spell now in force (or is a
   * redelivery of the one that did).
   */
  recordActivity(
    session: Pick<Session, "tenantId" | "poolId" | "desktopId" | "sessionId">,
    report: { reportedAt: string } & (
      | { kind: "connection"; disconnectedAt: string | null }
      | { kind: "idle"; idleSince: string | null }
    ),
  ): Promise<{ applied: false } | { applied: true; since?: string; started: boolean }>;
  /** Records the timeout warning the session got (while its desktop holds it). */
  recordTimeoutWarning(
    session: Pick<Session, "tenantId" | "poolId" | "desktopId" | "sessionId">,
    warning: TimeoutWarning,
  ): Promise<boolean>;
}
