/**
 * Ports: what the domain needs from the outside world. Adapters (DynamoDB, SQS, qcow2) implement
 * them; the domain never imports an SDK.
 */
import type { DesktopState } from "./domain/desktop-state.ts";
import type { Drill, DrState } from "./domain/dr.ts";
import type { Desktop, Image, ImageSource, ImageVersion, Pool, Session, Tenant } from "./domain/model.ts";
import type { UserData, UserDataChange } from "./domain/user-data.ts";
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
}

export type AssignResult =
  | { outcome: "assigned"; session: Session }
  | { outcome: "desktop-taken" }
  | { outcome: "user-has-session" };

export type EndSessionResult =
  | { outcome: "ended"; desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId"> }
  | { outcome: "not-active" };

export interface PoolRepository {
  /** Stores the pool and its desktops (PROVISIONING). */
  create(pool: Pool, desktops: Desktop[]): Promise<void>;
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
  transition(
    desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId">,
    from: DesktopState,
    to: DesktopState,
    changes?: Partial<Pick<Desktop, "error" | "lastSessionId">>,
  ): Promise<boolean>;
  remove(desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId">): Promise<void>;
  /** Desktops of every tenant in a transitional state not updated since `updatedBefore` (reconciler only). */
  listStuck(updatedBefore: string): Promise<Desktop[]>;
}

export interface SessionRepository {
  get(tenantId: string, sessionId: string): Promise<Session | undefined>;
  findActive(tenantId: string, poolId: string, userId: string): Promise<Session | undefined>;
  /** One atomic write: desktop AVAILABLE -> ASSIGNED, the user's per-pool lock, the session. */
  assign(desktop: Desktop, session: Session): Promise<AssignResult>;
  /** One atomic write: session ACTIVE -> ENDED, user lock released, desktop ASSIGNED -> REFRESHING. */
  end(session: Session, endedAt: string, endedBy: NonNullable<Session["endedBy"]>): Promise<EndSessionResult>;
}

export interface JobQueue {
  send(jobs: CloneJob[]): Promise<void>;
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
  /** Makes sure the read-only replica of a version exists on a datastore; created once. */
  ensureReplica(
    version: Pick<ImageVersion, "tenantId" | "imageId" | "version">,
    datastoreId: string,
  ): Promise<void>;
  /** Creates (or recreates, empty) the desktop's delta on top of its replica. */
  createLinkedClone(
    desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "imageId" | "imageVersion" | "datastoreId">,
  ): Promise<void>;
  deleteDesktopDisk(
    desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "datastoreId">,
  ): Promise<void>;
  /** Bytes the desktop's delta occupies on its datastore (0 when absent). */
  deltaBytes(desktop: Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "datastoreId">): Promise<number>;
}

export interface Clock {
  now(): Date;
}

export interface Ports extends DrPorts {
  tenants: TenantRepository;
  images: ImageRepository;
  pools: PoolRepository;
  desktops: DesktopRepository;
  sessions: SessionRepository;
  jobs: JobQueue;
  storage: StorageDriver;
  clock: Clock;
}

// --- User data and disaster recovery (issue 4) ---

export type UserDataRef = Pick<UserData, "tenantId" | "userId">;

export interface UserDataRepository {
  get(ref: UserDataRef): Promise<UserData | undefined>;
  list(tenantId: string): Promise<UserData[]>;
  /** Creates the record at version 0 unless it exists; returns the stored record either way. */
  createIfAbsent(record: UserData): Promise<UserData>;
  /** Conditional on the record being at `version` with no other session attached. */
  attach(ref: UserDataRef, sessionId: string, version: number): Promise<boolean>;
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
  send(messages: ReplicationMessage[]): Promise<void>;
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
  putDrill(drill: Drill): Promise<void>;
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
