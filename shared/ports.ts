/**
 * Ports: what the domain needs from the outside world. Adapters (DynamoDB, SQS, qcow2) implement
 * them; the domain never imports an SDK.
 */
import type { DesktopState } from "./domain/desktop-state.ts";
import type {
  Datastore,
  DatastoreUsage,
  Desktop,
  Drill,
  DrState,
  Image,
  ImageSource,
  ImageVersion,
  Pool,
  Replica,
  Session,
  SessionEnding,
  Tenant,
  UserData,
  UserDataChange,
  UserDataRef,
} from "./domain/model.ts";
import type { CloneJob } from "./messages/clone-job.ts";
import type { ReplicationMessage } from "./messages/replication.ts";
import type { UserDataJob } from "./messages/user-data-job.ts";

export interface TenantRepository {
  create(tenant: Tenant, apiKeyHash: string): Promise<void>;
  findByApiKeyHash(apiKeyHash: string): Promise<Tenant | undefined>;
}

export interface ImageRepository {
  createImage(image: Image): Promise<void>;
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

export interface DatastoreRepository {
  /** Registers a datastore, or updates its path, capacity and overcommit. */
  put(datastore: Datastore): Promise<void>;
  get(datastoreId: string): Promise<Datastore | undefined>;
  /** Registered datastores with their reserved bytes (one query). */
  list(): Promise<DatastoreUsage[]>;
  /** Reserved bytes of a datastore that may not be registered (the default local one). */
  provisionedBytes(datastoreId: string): Promise<number>;
  /** A lease on one of `slots` recompose slots of a datastore; false when all are held. */
  acquireRecomposeSlot(datastoreId: string, holder: string, slots: number, leaseMs: number): Promise<boolean>;
  releaseRecomposeSlot(datastoreId: string, holder: string, slots: number): Promise<void>;
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
  | { outcome: "assigned"; session: Session }
  | { outcome: "desktop-taken" }
  | { outcome: "user-has-session" };

export type EndSessionResult =
  | { outcome: "ended"; desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId"> }
  | { outcome: "not-active" };

export interface PoolRepository {
  /**
   * Stores the pool with its datastore reservations in one transaction, then its desktops
   * (PROVISIONING). False, and nothing written, when a datastore no longer has the room.
   */
  create(pool: Pool, desktops: Desktop[], reservations: Reservation[]): Promise<boolean>;
  /** Grows a pool from `pool.size` to `newSize` under the same rule as `create`. */
  grow(pool: Pool, newSize: number, desktops: Desktop[], reservations: Reservation[]): Promise<boolean>;
  /** Points the pool at a new version and records the recompose (conditional on ACTIVE). */
  startRecompose(
    tenantId: string,
    poolId: string,
    imageVersion: number,
    recompose: Pool["recompose"],
  ): Promise<void>;
  get(tenantId: string, poolId: string): Promise<Pool | undefined>;
  list(tenantId: string): Promise<Pool[]>;
  markDeleting(tenantId: string, poolId: string): Promise<void>;
  remove(tenantId: string, poolId: string): Promise<void>;
}

export interface DesktopRepository {
  get(tenantId: string, poolId: string, desktopId: string): Promise<Desktop | undefined>;
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
    changes?: Partial<Pick<Desktop, "error" | "lastSessionId" | "imageVersion" | "pristineAt">>,
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
  /** Records that the reconciler re-sent the desktop's job now (once per stale period). */
  markResent(
    desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "state">,
    at: string,
  ): Promise<void>;
  /** Removes the desktop and releases its reservation on its datastore, once. */
  remove(
    desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "datastoreId" | "provisionedBytes">,
  ): Promise<void>;
  /** A DELETING desktop gives way to a fresh PROVISIONING one, keeping its reservation. */
  replace(old: Pick<Desktop, "tenantId" | "poolId" | "desktopId">, fresh: Desktop): Promise<boolean>;
  /** AVAILABLE desktops of every tenant on one datastore (operator rebalance only). */
  listFreeOnDatastore(datastoreId: string): Promise<Desktop[]>;
  /**
   * Desktops of every tenant in a transitional state or ERROR, neither updated nor re-sent since
   * `updatedBefore` (reconciler only).
   */
  listStuck(updatedBefore: string): Promise<Desktop[]>;
  /** ASSIGNED desktops of every tenant (reconciler only: it checks each holds its user's lock). */
  listAssigned(): Promise<Desktop[]>;
}

/** The generation a disk job read (undefined: the desktop has never been fenced). */
export interface DiskFence {
  generation: number | undefined;
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
}

export interface JobQueue {
  /** `delaySeconds` defers delivery (a job that must wait for a free slot). */
  send(jobs: CloneJob[], opts?: { delaySeconds?: number }): Promise<void>;
}

export interface ImportedImage {
  sha256: string;
  virtualSizeBytes: number;
  fileBytes: number;
}

/** Where desktop disks live. The first adapter is qcow2 + qemu-img; vSphere/Proxmox/EBS fit the same shape. */
export interface StorageDriver {
  /**
   * Checks a tenant's publish source before anything is stored; throws a 400 DomainError naming
   * the problem (never a server path). A tenant reads only its own import folder.
   */
  validateSource(tenantId: string, source: ImageSource): Promise<void>;
  /** Imports a source disk into the region's image store (idempotent: the same target is rewritten). */
  importImage(
    version: Pick<ImageVersion, "tenantId" | "imageId" | "version" | "source">,
  ): Promise<ImportedImage>;
  removeImage(version: Pick<ImageVersion, "tenantId" | "imageId" | "version">): Promise<void>;
  /**
   * Makes sure the read-only replica of a version exists on a datastore; created once, and only
   * kept when its sha256 matches the version's. `created` is true for the one call that wrote it.
   */
  ensureReplica(
    version: Pick<ImageVersion, "tenantId" | "imageId" | "version" | "sha256">,
    datastoreId: string,
  ): Promise<{ created: boolean }>;
  removeReplica(
    version: Pick<ImageVersion, "tenantId" | "imageId" | "version">,
    datastoreId: string,
  ): Promise<void>;
  /** Whether the replica of a version is in place on a datastore. */
  hasReplica(
    version: Pick<ImageVersion, "tenantId" | "imageId" | "version">,
    datastoreId: string,
  ): Promise<boolean>;
  /** Creates (or recreates, empty) the desktop's delta of its generation on top of its replica. */
  createLinkedClone(desktop: CloneTarget): Promise<void>;
  /** Creates (or recreates) the desktop's disk of its generation as a complete copy of its image version. */
  createFullClone(desktop: CloneTarget): Promise<void>;
  /**
   * Deletes the desktop's disk files: of every generation but `keepGeneration`, or only the one of
   * `onlyGeneration`, or all of them.
   */
  deleteDesktopDisk(
    desktop: DesktopDiskRef,
    opts?: { keepGeneration?: number; onlyGeneration?: number },
  ): Promise<void>;
  /** Bytes the desktop's delta of its current generation occupies on its datastore (0 when absent). */
  deltaBytes(desktop: DesktopDiskRef): Promise<number>;
  /** Bytes the replica occupies on its datastore (0 when absent). */
  replicaBytes(
    version: Pick<ImageVersion, "tenantId" | "imageId" | "version">,
    datastoreId: string,
  ): Promise<number>;
}

export type DesktopDiskRef = Pick<
  Desktop,
  "tenantId" | "poolId" | "desktopId" | "datastoreId" | "generation"
>;

export type CloneTarget = DesktopDiskRef & Pick<Desktop, "imageId" | "imageVersion">;

export interface Clock {
  now(): Date;
}

export interface Ports extends DrPorts {
  tenants: TenantRepository;
  images: ImageRepository;
  pools: PoolRepository;
  desktops: DesktopRepository;
  sessions: SessionRepository;
  datastores: DatastoreRepository;
  replicas: ReplicaRepository;
  jobs: JobQueue;
  storage: StorageDriver;
  clock: Clock;
}

// --- User data and disaster recovery ---

export interface UserDataRepository {
  get(ref: UserDataRef): Promise<UserData | undefined>;
  /** Every tenant's users whose last change is older than `changedBefore` and not yet replicated (reconciler). */
  listBehind(changedBefore: string): Promise<UserData[]>;
  list(tenantId: string): Promise<UserData[]>;
  /** Creates the record at version 0 unless it exists; returns the stored record either way. */
  createIfAbsent(record: UserData): Promise<UserData>;
  /** Conditional on the record being at `version` with no other session attached. */
  attach(ref: UserDataRef, sessionId: string, version: number, at: string): Promise<boolean>;
  /** Version n -> n+1 and the change item, in one transaction; false when the record moved. */
  recordChange(change: UserDataChange, committedSessionId: string | undefined): Promise<boolean>;
  /** Clears `attachedSessionId` when it is this session (a discarded read-only session). */
  detach(ref: UserDataRef, sessionId: string): Promise<void>;
  getChange(ref: UserDataRef, version: number): Promise<UserDataChange | undefined>;
  listChanges(tenantId: string): Promise<UserDataChange[]>;
  markShipped(ref: UserDataRef, version: number, at: string, bytes: number): Promise<void>;
  /** Records the peer's verified apply of `version` (monotonic: an older ack changes nothing). */
  markReplicated(ref: UserDataRef, version: number, at: string): Promise<void>;
}

/** Users' data disks in the region's user-data store. */
export interface UserDataStore {
  /** Version 0: a blank disk (deterministic, so never shipped). Returns its content checksum. */
  ensureBlank(ref: UserDataRef, sizeBytes: number): Promise<string>;
  /** The session's overlay on the user's disk at `version`; kept when it already exists. */
  ensureOverlay(ref: UserDataRef, sessionId: string, version: number): Promise<string>;
  hasOverlay(ref: UserDataRef, sessionId: string): Promise<boolean>;
  overlayPath(ref: UserDataRef, sessionId: string): string;
  /** Builds version from+1 from the overlay and keeps the session's delta as an artifact. */
  commitOverlay(
    ref: UserDataRef,
    sessionId: string,
    fromVersion: number,
  ): Promise<{ sha256: string; deltaBytes: number }>;
  /** Builds version from+1 from a shipped delta; `install` puts it in place once verified. */
  applyDelta(
    ref: UserDataRef,
    fromVersion: number,
    deltaFile: string,
    sizeBytes: number,
  ): Promise<{ sha256: string; install(): Promise<void>; discard(): Promise<void> }>;
  hasVersion(ref: UserDataRef, version: number): Promise<boolean>;
  contentSha256(ref: UserDataRef, version: number): Promise<string>;
  deltaPath(ref: UserDataRef, version: number): string;
  removeOverlay(ref: UserDataRef, sessionId: string): Promise<void>;
  removeDelta(ref: UserDataRef, version: number): Promise<void>;
  removeVersion(ref: UserDataRef, version: number): Promise<void>;
}

/** The FIFO user-data queue: one message group per (tenant, user), so a user's jobs never overlap. */
export interface UserDataJobQueue {
  send(jobs: UserDataJob[]): Promise<void>;
}

/** This region's replication queue (ship, apply, acks, drills). */
export interface ReplicationQueue {
  /** `delaySeconds` defers delivery (a step machine that waits between two looks). */
  send(messages: ReplicationMessage[], opts?: { delaySeconds?: number }): Promise<void>;
}

/** The peer region as this region may reach it: its bucket and its replication queue. */
export interface PeerRegion {
  name: string;
  /** Uploads a file; answers the bytes sent. */
  putFile(key: string, path: string): Promise<number>;
  putJson(key: string, body: unknown): Promise<number>;
  send(messages: ReplicationMessage[]): Promise<void>;
}

/** This region's own replication bucket, where the peer puts what it ships. */
export interface ReplicaInbox {
  /** Downloads an object to a temporary file; `done` removes it. */
  fetchFile(key: string): Promise<{ path: string; bytes: number; done(): Promise<void> }>;
  getJson<T>(key: string): Promise<T>;
}

export interface DrRepository {
  getState(tenantId: string): Promise<DrState | undefined>;
  /** Sets the given fields (creates the item when absent). */
  updateState(tenantId: string, patch: Partial<Omit<DrState, "tenantId">>): Promise<void>;
  /** Marks the tenant's key (read at authentication) so this region refuses its logons. */
  setKeyFailedOver(tenantId: string, failedOver: boolean): Promise<void>;
  /** Saves a drill; with `expectedSteps`, only if it is still at that step (false otherwise). */
  putDrill(drill: Drill, expectedSteps?: number): Promise<boolean>;
  getDrill(tenantId: string, drillId: string): Promise<Drill | undefined>;
  /** Replicated configuration, written as the peer has it (idempotent upserts). */
  putTenant(tenant: Tenant, apiKeyHash: string): Promise<void>;
  getTenantWithKey(tenantId: string): Promise<{ tenant: Tenant; apiKeyHash: string } | undefined>;
  putImage(image: Image): Promise<void>;
  putVersion(version: ImageVersion): Promise<void>;
  putPool(pool: Pool): Promise<void>;
}

export interface DrPorts {
  userData: UserDataRepository;
  userDataStore: UserDataStore;
  userDataJobs: UserDataJobQueue;
  replication: ReplicationQueue;
  /** Undefined in a region without a peer. */
  peer: PeerRegion | undefined;
  inbox: ReplicaInbox;
  dr: DrRepository;
  region: {
    name: string;
    userDataSizeBytes: number;
    imagePath(v: ImageVersionRef): string;
    /** Puts a replicated image file into the image store after checking its sha256. */
    installImage(v: ImageVersionRef, file: string, sha256: string): Promise<void>;
  };
}

type ImageVersionRef = Pick<ImageVersion, "tenantId" | "imageId" | "version">;
