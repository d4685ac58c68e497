/**
 * Ports: what the domain needs from the outside world. Adapters (DynamoDB, SQS, qcow2) implement
 * them; the domain never imports an SDK.
 */
import type { DesktopState } from "./domain/desktop-state.ts";
import type { Desktop, Image, ImageSource, ImageVersion, Pool, Session, Tenant } from "./domain/model.ts";
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

export interface Ports {
  tenants: TenantRepository;
  images: ImageRepository;
  pools: PoolRepository;
  desktops: DesktopRepository;
  sessions: SessionRepository;
  jobs: JobQueue;
  storage: StorageDriver;
  clock: Clock;
}
