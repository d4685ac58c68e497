/**
 * The model of users' data and disaster recovery: user-data disks and their versions, forks, a
 * tenant's DR state, readiness reports and drills (the rest of the model is in model.ts).
 */
import type { Pool, Session } from "./model.ts";

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
  /** The DR epoch the latest version was made in (see DrState.epoch); 0 when absent. */
  epoch?: number;
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
  /** The DR epoch it was made in; 0 when absent. */
  epoch?: number;
  /** Content checksum of the version it was made on (the peer checks it has that very version). */
  baseSha256?: string;
  /**
   * When the peer answered that its own history of a later epoch supersedes this change: it is
   * not shipped again, and becomes a fork here when the peer's version arrives.
   */
  supersededAt?: string;
  /**
   * Epoch seconds after which the table may delete the record: set once both regions have the
   * change and a later version exists (never on the latest or an unreplicated change).
   */
  expiresAt?: number;
}

/**
 * A fork: a user's data that the current history does not contain, kept whole (never lost) until
 * the tenant resolves it. Made in a region that was failed over from (a session committed after
 * the fence), or when the peer's history of a later epoch replaces versions only this region had.
 */
export const forkCauses = [
  "committed-while-fenced",
  "superseded-by-failover",
  "committed-on-replaced-version",
] as const;
export const forkStates = ["OPEN", "RESOLVING", "RESOLVED"] as const;
/** `current`: the fork is dropped; `fork`: its content becomes the user's next version. */
export const forkResolutions = ["current", "fork"] as const;
export type ForkResolution = (typeof forkResolutions)[number];

export interface UserDataFork {
  tenantId: string;
  forkId: string;
  userId: string;
  cause: (typeof forkCauses)[number];
  state: (typeof forkStates)[number];
  /** The region whose user-data store holds the fork's disk. */
  region: string;
  /** The epoch its content was made in. */
  epoch: number;
  /** The last version the fork shares with the current history. */
  baseVersion: number;
  /** The versions the fork's history had (superseded), or the session it holds (fenced commit). */
  versions?: number[];
  sessionId?: string;
  sha256: string;
  sizeBytes: number;
  createdAt: string;
  keep?: ForkResolution;
  resolvedAt?: string;
  /** With `keep: "fork"`: the version that holds the fork's content now. */
  resolvedVersion?: number;
}

export type UserDataState = "ATTACHING" | "ATTACHED" | "READ_ONLY" | "COMMITTING" | "COMMITTED";

/** A region's disaster-recovery state for one tenant. */
export interface DrState {
  tenantId: string;
  /** Primary: the tenant is served by the peer. DR: this region serves the tenant. */
  failedOver?: boolean;
  /**
   * The tenant's DR epoch, as this region knows it: raised by each failover and each completed
   * failback, so a change made on the other side of one is recognised (see UserDataFork).
   */
  epoch?: number;
  /**
   * This region must not serve the tenant: set by the DR region's failover in this region's table
   * directly (not through a cache); logons are refused and sessions' commits become forks.
   */
  fenced?: boolean;
  failedOverAt?: string;
  failingBack?: boolean;
  failedBackAt?: string;
  /** DR: the peer's pools, as replicated; a drill or a failover turns them into desktops. */
  standbyPools?: Pool[];
  /** DR: counts the writes of `standbyPools`, so concurrent applies merge instead of overwriting. */
  standbyRevision?: number;
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
