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

export type ImageVersionState = "PUBLISHING" | "READY" | "FAILED";

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

export type PoolState = "ACTIVE" | "DELETING";
export type Assignment = "floating" | "dedicated";
export type CloneType = "linked" | "full";
export type RefreshPolicy = "refresh" | "delete" | "none";

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
  error?: string;
  updatedAt: string;
}

export type SessionState = "ACTIVE" | "ENDED";

export interface Session {
  tenantId: string;
  sessionId: string;
  poolId: string;
  desktopId: string;
  userId: string;
  state: SessionState;
  startedAt: string;
  endedAt?: string;
  endedBy?: "api" | "event" | "pool-delete" | "recompose";
}

export interface ConnectionInfo {
  protocol: "rdp";
  host: string;
  port: number;
}

export function connectionInfo(desktop: Pick<Desktop, "desktopId" | "poolId">): ConnectionInfo {
  return { protocol: "rdp", host: `${desktop.desktopId}.${desktop.poolId}.desktops.internal`, port: 3389 };
}
