import type {
  Drill,
  DrState,
  ForkResolution,
  ReadinessReport,
  UserData,
  UserDataChange,
  UserDataFork,
  UserDataRef,
} from "../domain/dr-model.ts";
import type { Image, ImageVersion, Pool, Tenant } from "../domain/model.ts";
import type { ReplicationMessage } from "../messages/replication.ts";
import type { ReplicationQueue, UserDataJobQueue } from "./queues.ts";

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
  /** The session's disk is in a desktop's VM now (while the session is the writer or reads it). */
  markPlugged(ref: UserDataRef, sessionId: string, desktopId: string): Promise<void>;
  /** The desktop's VM let go of the disk. */
  markUnplugged(ref: UserDataRef, desktopId: string): Promise<void>;
  /** Clears `attachedSessionId` when it is this session (a discarded read-only session). */
  detach(ref: UserDataRef, sessionId: string): Promise<void>;
  getChange(ref: UserDataRef, version: number): Promise<UserDataChange | undefined>;
  /** The user's record and the change `version`, read together (one call). */
  getWithChange(
    ref: UserDataRef,
    version: number,
  ): Promise<{ record: UserData | undefined; change: UserDataChange | undefined }>;
  listChanges(tenantId: string): Promise<UserDataChange[]>;
  /** Records a ship of the change; the user's running total counts each change's bytes once. */
  markShipped(ref: UserDataRef, version: number, at: string, bytes: number): Promise<void>;
  /** The peer keeps its own, later-epoch history instead of this change (never shipped again). */
  markSuperseded(ref: UserDataRef, version: number, at: string): Promise<void>;
  /**
   * Records the peer's verified apply of `version`, whose checksum the peer names (monotonic: an
   * older ack changes nothing). A change recorded here with another checksum is left alone and
   * answered as a conflict; otherwise the change as it was before (undefined once expired) and
   * the user's record as written (undefined when it changed nothing).
   */
  markReplicated(
    ref: UserDataRef,
    version: number,
    sha256: string,
    at: string,
  ): Promise<{ conflict: true } | { conflict: false; before?: UserDataChange; record?: UserData }>;
  /**
   * Lets the user's changes up to `throughVersion` expire at `expiresAt` (epoch seconds; the store
   * deletes them some time after): the caller guarantees that both regions have them and a later
   * one exists. Changes that already have an expiry keep it. Answers how many it marked.
   */
  expireChanges(ref: UserDataRef, throughVersion: number, expiresAt: number): Promise<number>;
}

/** Forks of users' data (model: UserDataFork). */
export interface UserDataForkRepository {
  get(tenantId: string, forkId: string): Promise<UserDataFork | undefined>;
  list(tenantId: string): Promise<UserDataFork[]>;
  /**
   * In one transaction: the user's record goes back from version `from` to `base` (no writer
   * attached), the changes after `base` go, and the fork that holds them is written. False when
   * the record moved (or the fork exists: it was done before).
   */
  forkHistory(
    ref: UserDataRef,
    from: number,
    base: { version: number; sha256: string; epoch: number },
    fork: UserDataFork,
  ): Promise<boolean>;
  /** In one transaction: the session (`fork.sessionId`) stops being the writer; its fork is written. */
  forkCommit(ref: UserDataRef, fork: UserDataFork): Promise<boolean>;
  /** OPEN -> RESOLVING with `keep` (true again for the same `keep`; false otherwise). */
  setResolving(tenantId: string, forkId: string, keep: ForkResolution): Promise<boolean>;
  setResolved(tenantId: string, forkId: string, at: string, resolvedVersion?: number): Promise<void>;
  /** RESOLVING -> OPEN: the resolution could not be carried out (the tenant may ask again). */
  reopen(tenantId: string, forkId: string): Promise<void>;
}

/** Users' data disks in the region's user-data store. */
export interface UserDataStore {
  /** Version 0: a blank disk (deterministic, so never shipped). Returns its content checksum. */
  ensureBlank(ref: UserDataRef, sizeBytes: number): Promise<string>;
  /** The session's overlay on the user's disk at `version`; kept when it already exists. */
  ensureOverlay(ref: UserDataRef, sessionId: string, version: number): Promise<string>;
  hasOverlay(ref: UserDataRef, sessionId: string): Promise<boolean>;
  overlayPath(ref: UserDataRef, sessionId: string): string;
  /**
   * Builds version from+1 from the overlay (which becomes it) and keeps the session's delta as an
   * artifact; answers the version's content checksum.
   */
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
  ): Promise<{ sha256: string; install(): Promise<void> }>;
  hasVersion(ref: UserDataRef, version: number): Promise<boolean>;
  contentSha256(ref: UserDataRef, version: number): Promise<string>;
  deltaPath(ref: UserDataRef, version: number): string;
  /** Where a delta shipped by the peer is downloaded: in the user's own folder, beside its disks. */
  incomingDeltaPath(ref: UserDataRef, version: number): string;
  removeOverlay(ref: UserDataRef, sessionId: string): Promise<void>;
  removeDelta(ref: UserDataRef, version: number): Promise<void>;
  removeVersion(ref: UserDataRef, version: number): Promise<void>;
  /**
   * The versions whose disks are here, each with the version it reads through (its backing
   * file), if any: a version's predecessors stay while it does.
   */
  listVersions(ref: UserDataRef): Promise<{ version: number; backingVersion?: number }[]>;
  /**
   * Makes the version one file when its chain of backing files is deep (its content unchanged);
   * answers whether it did.
   */
  flattenIfDeep(ref: UserDataRef, version: number): Promise<boolean>;
  /** Copies version `version`'s disk to be the fork's (kept when the fork's disk exists). */
  keepVersionAsFork(ref: UserDataRef, version: number, forkId: string): Promise<void>;
  /** The fork's disk: version `fromVersion` with the session's overlay; answers its checksum. */
  keepOverlayAsFork(
    ref: UserDataRef,
    sessionId: string,
    fromVersion: number,
    forkId: string,
  ): Promise<string>;
  /**
   * The session's overlay on version `version` whose content is the fork's (so that committing it
   * makes the fork's content the next version, shipped as a delta like any other).
   */
  overlayFromFork(ref: UserDataRef, forkId: string, sessionId: string, version: number): Promise<void>;
  removeFork(ref: UserDataRef, forkId: string): Promise<void>;
}

/** The peer region as this region may reach it: its bucket and its replication queue. */
export interface PeerRegion {
  name: string;
  /** Uploads a file; answers the bytes sent. */
  putFile(key: string, path: string): Promise<number>;
  putJson(key: string, body: unknown): Promise<number>;
  send(messages: ReplicationMessage[]): Promise<void>;
  /**
   * Fences the tenant in the peer at `epoch`, in the peer's own table: from the moment it returns
   * the peer refuses the tenant's logons and turns its commits into forks. Never lowers an epoch.
   */
  fence(tenantId: string, epoch: number, at: string): Promise<void>;
}

/** This region's own replication bucket, where the peer puts what it ships. */
export interface ReplicaInbox {
  /**
   * Downloads an object, streamed to `destination` (written whole or not at all); without one, to
   * temporary storage, which refuses objects larger than its limit. `done` removes the file.
   * `sync: false` skips the fsync before the rename, for a file that is only an input, checked by
   * checksum where it is used and removed afterwards (a crash leaves an orphan, never a version).
   */
  fetchFile(
    key: string,
    destination?: string,
    opts?: { sync?: boolean },
  ): Promise<{ path: string; bytes: number; done(): Promise<void> }>;
  /** Deletes an object; no error when it is not there. */
  remove(key: string): Promise<void>;
  getJson<T>(key: string): Promise<T>;
}

export interface DrRepository {
  getState(tenantId: string): Promise<DrState | undefined>;
  /** Sets the given fields (creates the item when absent). */
  updateState(
    tenantId: string,
    patch: Partial<
      Omit<DrState, "tenantId" | "deletedPools" | "deletedVersions" | "standbyPools" | "standbyRevision">
    >,
  ): Promise<void>;
  /**
   * Writes the standby pools and when the configuration was applied, if no other write of them came
   * since the state was read at `revision` (its `standbyRevision`, 0 when absent). Answers whether
   * it wrote.
   */
  putStandbyPools(tenantId: string, pools: Pool[], appliedAt: string, revision: number): Promise<boolean>;
  /** Records an image version as in the peer's bucket ("<imageId>@<n>"): an atomic append, once. */
  addShippedImage(tenantId: string, id: string): Promise<void>;
  /** Appends tombstones (atomically: concurrent calls lose none; ones already there are not repeated). */
  addDeletions(tenantId: string, deletions: { pools?: string[]; versions?: string[] }): Promise<void>;
  /**
   * Moves the tenant to `epoch` with these fields, unless this region already knows a later epoch
   * (a late or repeated failover or failback message changes nothing then). Answers whether it did.
   */
  enterEpoch(
    tenantId: string,
    epoch: number,
    patch: Partial<Omit<DrState, "tenantId" | "epoch" | "deletedPools" | "deletedVersions">>,
  ): Promise<boolean>;
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
  /** Every tenant of the region (a scan: for the readiness schedule only, never a request path). */
  listTenantIds(): Promise<string[]>;
  /** The latest readiness report of the tenant, checked here or received from the peer. */
  getReadiness(tenantId: string): Promise<ReadinessReport | undefined>;
  /**
   * Keeps the report unless a later check's is stored already. `first` is true when it is the first
   * report stored for its check (a repeated run of one check answers false).
   */
  putReadiness(report: ReadinessReport): Promise<{ written: boolean; first: boolean }>;
}

export interface DrPorts {
  userData: UserDataRepository;
  forks: UserDataForkRepository;
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
    /** Where a replicated image version is downloaded: in the image store, beside its place. */
    incomingImagePath(v: ImageVersionRef): string;
    /** Puts a replicated image file into the image store after checking its sha256. */
    installImage(v: ImageVersionRef, file: string, sha256: string): Promise<void>;
  };
}

type ImageVersionRef = Pick<ImageVersion, "tenantId" | "imageId" | "version">;
