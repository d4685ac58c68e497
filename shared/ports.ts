/**
 * Ports: what the domain needs from the outside world. Adapters (DynamoDB, SQS, qcow2) implement
 * them; the domain never imports an SDK.
 */
import type { DesktopState } from "./domain/desktop-state.ts";
import type {
  Datastore,
  DatastoreUsage,
  Desktop,
  Image,
  ImageSource,
  ImageVersion,
  Pool,
  Replica,
  Session,
  Tenant,
} from "./domain/model.ts";
import type { CloneJob } from "./messages/clone-job.ts";

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
}

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
  /** Conditional on the current state being `from`; false when it was not. */
  /** A desktop with an `assignedUserId` (dedicated) goes AVAILABLE without joining the free index. */
  transition(
    desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "assignedUserId">,
    from: DesktopState,
    to: DesktopState,
    changes?: Partial<Pick<Desktop, "error" | "lastSessionId" | "imageVersion" | "pristineAt">>,
  ): Promise<boolean>;
  /** Removes the desktop and releases its reservation on its datastore, once. */
  remove(
    desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "datastoreId" | "provisionedBytes">,
  ): Promise<void>;
  /** A DELETING desktop gives way to a fresh PROVISIONING one, keeping its reservation. */
  replace(old: Pick<Desktop, "tenantId" | "poolId" | "desktopId">, fresh: Desktop): Promise<boolean>;
  /** AVAILABLE desktops of every tenant on one datastore (operator rebalance only). */
  listFreeOnDatastore(datastoreId: string): Promise<Desktop[]>;
  /** Desktops of every tenant in a transitional state not updated since `updatedBefore` (reconciler only). */
  listStuck(updatedBefore: string): Promise<Desktop[]>;
}

export interface SessionRepository {
  get(tenantId: string, sessionId: string): Promise<Session | undefined>;
  findActive(tenantId: string, poolId: string, userId: string): Promise<Session | undefined>;
  /**
   * One atomic write: desktop AVAILABLE -> ASSIGNED, the user's per-pool lock, the session.
   * With `dedicate`, the desktop also becomes the user's own (dedicated pools, first logon).
   */
  assign(desktop: Desktop, session: Session, opts?: { dedicate?: boolean }): Promise<AssignResult>;
  /** Dedicated pools: the desktop id a user owns, if any. */
  ownedDesktop(tenantId: string, poolId: string, userId: string): Promise<string | undefined>;
  /** One atomic write: session ACTIVE -> ENDED, user lock released, desktop ASSIGNED -> REFRESHING. */
  end(session: Session, endedAt: string, endedBy: NonNullable<Session["endedBy"]>): Promise<EndSessionResult>;
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
  /** Checks a publish source before anything is stored; throws a 400 DomainError naming the problem. */
  validateSource(source: ImageSource): Promise<void>;
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
  /** Creates (or recreates, empty) the desktop's delta on top of its replica. */
  createLinkedClone(desktop: CloneTarget): Promise<void>;
  /** Creates (or recreates) the desktop's disk as a complete copy of its image version. */
  createFullClone(desktop: CloneTarget): Promise<void>;
  deleteDesktopDisk(
    desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "datastoreId">,
  ): Promise<void>;
  /** Bytes the desktop's delta occupies on its datastore (0 when absent). */
  deltaBytes(desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "datastoreId">): Promise<number>;
  /** Bytes the replica occupies on its datastore (0 when absent). */
  replicaBytes(
    version: Pick<ImageVersion, "tenantId" | "imageId" | "version">,
    datastoreId: string,
  ): Promise<number>;
}

export type CloneTarget = Pick<
  Desktop,
  "tenantId" | "poolId" | "desktopId" | "imageId" | "imageVersion" | "datastoreId"
>;

export interface Clock {
  now(): Date;
}

export interface Ports {
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
