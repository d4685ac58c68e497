import type { DesktopState } from "./desktop-state.ts";

export interface Tenant {
  tenantId: string;
  name: string;
  createdAt: string;
}

export interface Image {
  tenantId: string;
  imageId: string;
  name: string;
  latestVersion: number;
  createdAt: string;
}

/*
 * Enumerations are constants first: the API's schemas and the table's codecs derive from them, so
 * a new value is added in one place.
 */
export const imageVersionStates = ["PUBLISHING", "READY", "FAILED"] as const;
export type ImageVersionState = (typeof imageVersionStates)[number];

export type ImageSource = { path: string } | { blankSizeMiB: number };

export interface ImageVersion {
  tenantId: string;
  imageId: string;
  version: number;
  state: ImageVersionState;
  source: ImageSource;
  /** sha256 of the imported qcow2, set once READY. */
  sha256?: string;
  virtualSizeBytes?: number;
  fileBytes?: number;
  error?: string;
  createdAt: string;
  readyAt?: string;
  /** Set once retired: no new desktop may be made from this version. */
  retiredAt?: string;
}

export const poolStates = ["ACTIVE", "DELETING"] as const;
export type PoolState = (typeof poolStates)[number];
export const assignments = ["floating", "dedicated"] as const;
export type Assignment = (typeof assignments)[number];
export const cloneTypes = ["linked", "full"] as const;
export type CloneType = (typeof cloneTypes)[number];
export const refreshPolicies = ["refresh", "delete", "none"] as const;
export type RefreshPolicy = (typeof refreshPolicies)[number];

export interface RecomposeTarget {
  fromVersion: number;
  toVersion: number;
  startedAt: string;
}

export interface Pool {
  tenantId: string;
  poolId: string;
  name: string;
  imageId: string;
  /** The version every desktop of the pool is (or is being recomposed) on. */
  imageVersion: number;
  assignment: Assignment;
  cloneType: CloneType;
  refreshPolicy: RefreshPolicy;
  /** Refresh at logoff once the delta holds more than this % of the replica's size (any policy). */
  refreshWhenDeltaExceedsPercent?: number;
  /** Refresh at logoff once the desktop was last made pristine this many days ago. */
  refreshEveryDays?: number;
  size: number;
  /** Datastores the pool may place desktops on (all registered ones when created without a list). */
  datastoreIds: string[];
  /** The last recompose (its progress is counted from the desktops). */
  recompose?: RecomposeTarget;
  state: PoolState;
  createdAt: string;
}

/** Where desktop disks live; capacity is in virtual (provisioned) bytes times the overcommit ratio. */
export interface Datastore {
  datastoreId: string;
  path: string;
  capacityGiB: number;
  overcommit: number;
  hostId?: string;
  createdAt: string;
}

/** A datastore with the bytes its desktops have reserved (their virtual sizes). */
export interface DatastoreUsage extends Datastore {
  provisionedBytes: number;
}

/** A read-only copy of one image version on one datastore. */
export interface Replica {
  tenantId: string;
  imageId: string;
  version: number;
  datastoreId: string;
  sha256: string;
  /** How many times the replica file was actually written (1, however many desktops raced for it). */
  creations: number;
  createdAt: string;
}

export interface Desktop {
  tenantId: string;
  poolId: string;
  desktopId: string;
  /** Position in the pool at creation; spreads desktops evenly in the free index. */
  slot?: number;
  state: DesktopState;
  datastoreId: string;
  imageId: string;
  imageVersion: number;
  cloneType?: CloneType;
  /** Virtual size reserved on the datastore for this desktop. */
  provisionedBytes?: number;
  /** Dedicated pools: the user this desktop belongs to, across sessions. */
  assignedUserId?: string;
  /** When the disk was last made pristine (created, refreshed or recomposed). */
  pristineAt?: string;
  sessionId?: string;
  userId?: string;
  /** When the current session started (only while ASSIGNED). */
  sessionStartedAt?: string;
  /** The session whose logoff put the desktop into REFRESHING; refresh jobs must match it. */
  lastSessionId?: string;
  /**
   * Disk-job fence: each job that writes the disk first takes the desktop by raising this, builds
   * the disk in a file named after it, and makes the desktop AVAILABLE only if it is still its
   * own. A stale or duplicate job can never write the file, nor hand out the disk, of a later one.
   */
  generation?: number;
  /** When the reconciler last re-sent the desktop's job (so that it re-sends once per period). */
  resentAt?: string;
  /** Where the desktop's screen is served (VM desktops, set by its host when the VM is ready). */
  console?: DesktopConsole;
  /** The session whose connection the host has prepared (password set, user shown). */
  connectedSessionId?: string;
  error?: string;
  updatedAt: string;
}

export const sessionStates = ["ACTIVE", "ENDED"] as const;
export type SessionState = (typeof sessionStates)[number];
/** Why a session ended: the user (API or desktop event), the pool, a recompose, or a repair. */
export const sessionEndings = [
  "api",
  "event",
  "pool-delete",
  "recompose",
  "orphaned",
  "desktop-failure",
  /** The reconciler: the session's desktop no longer exists. */
  "desktop-gone",
] as const;
export type SessionEnding = (typeof sessionEndings)[number];

export interface Session {
  tenantId: string;
  sessionId: string;
  poolId: string;
  desktopId: string;
  userId: string;
  state: SessionState;
  /** Where the desktop's disk is: its jobs go to the queue of that datastore (its host's). */
  datastoreId?: string;
  startedAt: string;
  endedAt?: string;
  endedBy?: SessionEnding;
}

/** The VNC endpoint of a VM desktop's screen, on its host. */
export interface DesktopConsole {
  host: string;
  port: number;
  /** VNC over WebSocket, for browser clients (noVNC). */
  websocketPort?: number;
}

/**
 * How a user reaches their desktop. A VM desktop answers VNC with a one-time password, set on the
 * VM by its host ("PREPARING" until the host has done it, then "READY"); a new logon of the same
 * session gets a new one. A desktop whose VM another system runs is reached through that system.
 */
export type ConnectionInfo =
  | ({
      protocol: "vnc";
      password?: string;
      expiresAt?: string;
      state: "PREPARING" | "READY";
    } & DesktopConsole)
  | { protocol: "external"; detail: string };

/** A hypervisor host as the control plane sees it: what its agent last said, and when. */
export interface Host {
  hostId: string;
  /** UP while it heartbeats; LATE once its heartbeat is older than the deadline. */
  state: "UP" | "LATE";
  lastHeartbeatAt: string;
  startedAt: string;
  runningVms: number;
  freeMemoryBytes: number;
  /** Datastores whose desktops the host runs. */
  datastoreIds: string[];
  /** Why the host cannot run desktops now (e.g. its hypervisor is missing); none when it can. */
  problem?: string;
}

/**
 * A user's data disk: the only per-user state that survives a refresh and the only thing shipped
 * to the DR region. Versions count committed sessions (0 is the blank disk); `sha256` is the
 * content checksum of the current version, the same in every region that holds it.
 */
export interface UserData {
  tenantId: string;
  userId: string;
  version: number;
  sha256: string;
  sizeBytes: number;
  /** The one session that may write the disk (its overlay is committed at logoff). */
  attachedSessionId?: string;
  attachedVersion?: number;
  /** When the attached session's disk was ready (a drill measures its RTO with it). */
  attachedAt?: string;
  /** The desktop whose running VM holds the attached session's disk (it must let go before a commit). */
  pluggedInto?: string;
  lastCommittedSessionId?: string;
  lastChangeAt: string;
  createdAt: string;
  /** Highest version the peer region has applied and verified (versions applied here from the peer count too). */
  replicatedVersion: number;
  replicatedAt?: string;
  /** Bytes this region shipped of the user's changes, each change once (outlives expired changes). */
  shippedBytes?: number;
}

export type UserDataRef = Pick<UserData, "tenantId" | "userId">;

/** One version's change: the delta of the session that made it. */
export interface UserDataChange {
  tenantId: string;
  userId: string;
  version: number;
  sha256: string;
  deltaBytes: number;
  sessionId?: string;
  /** The region whose session made the change. */
  origin: string;
  committedAt: string;
  shippedAt?: string;
  shippedBytes?: number;
  /** When the peer region applied and verified it. */
  replicatedAt?: string;
  /**
   * Epoch seconds after which the table may delete the record: set once both regions have the
   * change and a later version exists (never on the latest or an unreplicated change).
   */
  expiresAt?: number;
}

export type UserDataState = "ATTACHING" | "ATTACHED" | "READ_ONLY" | "COMMITTING" | "COMMITTED";

/** A region's disaster-recovery state for one tenant. */
export interface DrState {
  tenantId: string;
  /** Primary: the tenant is served by the peer. DR: this region serves the tenant. */
  failedOver?: boolean;
  failedOverAt?: string;
  failingBack?: boolean;
  failedBackAt?: string;
  /** DR: the peer's pools, as replicated; a drill or a failover turns them into desktops. */
  standbyPools?: Pool[];
  configAppliedAt?: string;
  /** Source: image versions already in the peer's bucket ("<imageId>@<n>"), shipped once each. */
  shippedImages?: string[];
  /**
   * Tombstones: pools (ids) and image versions ("<imageId>@<n>") deleted in the source region. The
   * source ships them with every configuration document; the target keeps them for good, so no
   * repeated, late or reordered document brings back what was deleted (ids are never reused).
   * Only ever appended to (`DrRepository.addDeletions`).
   */
  deletedPools?: string[];
  deletedVersions?: string[];
}

export const readinessUserStates = ["OK", "FAILED", "NOT_COMPARABLE"] as const;
export type ReadinessUserState = (typeof readinessUserStates)[number];
export const readinessFailureKinds = ["user-data", "image-version", "pool"] as const;

/**
 * A DR readiness check of one tenant (one per schedule period): the DR region compared a rotating
 * sample of users' data, and every READY image version and pool, with what the primary listed.
 * Stored in the region that checked it and in the one that asked (the latest report only).
 */
export interface ReadinessReport {
  tenantId: string;
  /** The period the primary sampled for (its start, ISO): the same for a repeated run. */
  checkId: string;
  sourceRegion: string;
  checkedRegion: string;
  sampledAt: string;
  checkedAt: string;
  ok: boolean;
  /** The primary's RPO when it sampled: the age of its oldest change not yet verified in DR (0: none). */
  rpoMs: number;
  /** Users with data in the primary (the sample rotates through them, period after period). */
  usersTotal: number;
  users: {
    userId: string;
    version: number;
    drVersion: number;
    state: ReadinessUserState;
    /** DR's disk file was read and its content checksum recomputed (not only its record compared). */
    contentVerified: boolean;
    reason?: string;
  }[];
  imageVersionsChecked: number;
  poolsChecked: number;
  failures: { kind: (typeof readinessFailureKinds)[number]; id: string; reason: string }[];
}

export const drillStates = ["RUNNING", "SUCCEEDED", "FAILED"] as const;
export type DrillState = (typeof drillStates)[number];

/**
 * A drill is a step machine: each delivery of its job does one short step from `phase` and, while
 * it waits for desktops or user data, queues itself again with a delay.
 */
export const drillPhases = [
  "STARTING",
  "PROVISIONING",
  "WAITING_FOR_DESKTOPS",
  "LOGGING_ON",
  "WAITING_FOR_USER_DATA",
  "VERIFYING",
  "CLEANING_UP",
  "DONE",
] as const;
export type DrillPhase = (typeof drillPhases)[number];

export interface Drill {
  tenantId: string;
  drillId: string;
  state: DrillState;
  phase: DrillPhase;
  pools: string[];
  sampleUsers?: number;
  /** The users the drill logs on (chosen at its start). */
  users?: string[];
  drillPools?: string[];
  /** The drill's sessions, once logged on. */
  sessions?: Pick<Session, "sessionId" | "userId" | "poolId">[];
  /** When each user's data was attached (epoch ms), as the drill saw it. */
  attachedAt?: Record<string, number>;
  /** When the current phase began (a waiting phase fails past its deadline). */
  phaseStartedAt?: string;
  /** How many deliveries of the drill's job did work (each one short). */
  steps?: number;
  /** When the last step was saved: a drill that stands still longer lost its next message. */
  stepAt?: string;
  startedAt: string;
  finishedAt?: string;
  /** Age of the oldest change the peer committed but this region had not applied at drill start. */
  rpoMs?: number;
  rpoNote?: string;
  /** Drill start to the first / to every user logged on with their data attached. */
  rtoFirstLogonMs?: number;
  rtoAllLogonsMs?: number;
  usersPlanned?: number;
  usersLoggedOn?: number;
  usersVerified?: number;
  usersFailed?: { userId: string; reason: string }[];
  bytesShipped?: number;
  error?: string;
}
