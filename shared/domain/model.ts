import type { DesktopState } from "./desktop-state.ts";

export interface Tenant {
  tenantId: string;
  name: string;
  createdAt: string;
}

/** A tenant's limits (the operator's overrides on the region's defaults); bytes are virtual sizes. */
export const quotaNames = ["maxDesktops", "maxProvisionedBytes", "maxImages", "maxImageBytes"] as const;
export type QuotaName = (typeof quotaNames)[number];
export type QuotaLimits = Record<QuotaName, number>;
/** What a tenant holds against its quotas: desktop records, the bytes they reserve, images. */
export interface TenantUsage {
  desktops: number;
  provisionedBytes: number;
  images: number;
}
/** A tenant's limits in force (overrides, else defaults), which ones the operator set, its usage. */
export interface TenantQuotas {
  tenantId: string;
  limits: QuotaLimits;
  overridden: QuotaName[];
  usage: TenantUsage;
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
  /** How many desktops the pool has (a pool that sizes itself changes it within its bounds). */
  size: number;
  /**
   * A pool that sizes itself (maxSize set): it keeps `spare` free desktops, provisioned ahead,
   * within [minSize, maxSize]; a logon that finds none free waits in line with a ticket.
   */
  minSize?: number;
  maxSize?: number;
  spare?: number;
  /**
   * Of the free desktops, keep this many VMs running (plus one per waiting ticket); the others are
   * powered off (STOPPED, disk kept) and started when needed. Only where a host runs the VMs.
   */
  poweredOnSpare?: number;
  /** Free desktops beyond `spare` are removed once free this long (never below minSize). */
  idleSeconds?: number;
  /** A queued logon's ticket expires after this long. */
  ticketTimeoutSeconds?: number;
  /** Datastores the pool may place desktops on (all registered ones when created without a list). */
  datastoreIds: string[];
  /** The last recompose (its progress is counted from the desktops). */
  recompose?: RecomposeTarget;
  /** When abandoned or overlong sessions are logged off (none set: never). */
  sessionTimeouts?: SessionTimeouts;
  state: PoolState;
  createdAt: string;
}

/** How a pool sizes itself: the settings a creation, a PATCH and the table carry alike. */
export type PoolSizingSettings = {
  [K in "minSize" | "maxSize" | "spare" | "poweredOnSpare" | "idleSeconds" | "ticketTimeoutSeconds"]?:
    | Pool[K]
    | undefined;
};

export const ticketStates = ["WAITING", "SERVED", "EXPIRED"] as const;
export type TicketState = (typeof ticketStates)[number];

/** A queued logon: served first come, first served, when a desktop of the pool is free. */
export interface LogonTicket {
  tenantId: string;
  poolId: string;
  /** Time-ordered: tickets are served in the order of their ids. */
  ticketId: string;
  userId: string;
  state: TicketState;
  createdAt: string;
  /** When the ticket expires unless served (the pool's ticketTimeoutSeconds after it was made). */
  validUntil: string;
  servedAt?: string;
  sessionId?: string;
}

/**
 * A pool's session timeouts, in seconds: a session disconnected, or idle (as its desktop agent
 * reports), for longer than these is logged off, as is any session older than `maxLifetimeSeconds`;
 * `warningSeconds` before that (default 60) the session is warned.
 */
export interface SessionTimeouts {
  disconnectSeconds?: number;
  idleSeconds?: number;
  maxLifetimeSeconds?: number;
  warningSeconds?: number;
}

/** Where desktop disks live; capacity is in virtual (provisioned) bytes times the overcommit ratio. */
export interface Datastore {
  datastoreId: string;
  path: string;
  capacityGiB: number;
  overcommit: number;
  hostId?: string;
  /** At most this many desktops provisioned at once on it (default: the region's setting). */
  provisioningCap?: number;
  /** At most this many refreshes and recomposes at once on it (default: the region's setting). */
  maintenanceCap?: number;
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
  /** When the desktop was added to its pool (desktops older than this field have none). */
  createdAt?: string;
  /** When the disk was last made pristine (created, refreshed or recomposed). */
  pristineAt?: string;
  /**
   * When the latest disk job (provision, refresh, recompose) took the desktop, and once its disk is
   * made, when the job started on it (a set's desktops are built one after the other, each from its
   * own start to its `pristineAt`): its worker's record.
   */
  diskJobStartedAt?: string;
  sessionId?: string;
  userId?: string;
  /** When the current session started (only while ASSIGNED). */
  sessionStartedAt?: string;
  /** The current session's activity as its desktop agent reported it (only while ASSIGNED). */
  disconnectedAt?: string;
  idleSince?: string;
  /** The agent's time of the last connection (disconnect/reconnect) and idle reports applied. */
  connectionReportedAt?: string;
  idleReportedAt?: string;
  timeoutWarning?: TimeoutWarning;
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
/** Why a session ended: the user (API or desktop event), the pool, a recompose, a repair, a timeout. */
export const sessionEndings = [
  "api",
  "event",
  "pool-delete",
  "recompose",
  "orphaned",
  "desktop-failure",
  "failover",
  /** The reconciler: the session's desktop no longer exists. */
  "desktop-gone",
  "disconnect-timeout",
  "idle-timeout",
  "max-lifetime",
] as const;
export type SessionEnding = (typeof sessionEndings)[number];
/** The endings a pool's session timeouts decide. */
export const timeoutReasons = ["disconnect-timeout", "idle-timeout", "max-lifetime"] as const;
export type TimeoutReason = (typeof timeoutReasons)[number];

/** The warning a session got before a timeout logs it off. */
export interface TimeoutWarning {
  reason: TimeoutReason;
  logoffAt: string;
  warnedAt: string;
}

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
  /** Since when the user is disconnected, or idle, as the desktop agent reported (while ACTIVE). */
  disconnectedAt?: string;
  idleSince?: string;
  /** The latest timeout warning (kept on the ended record of a session a timeout ended). */
  timeoutWarning?: TimeoutWarning;
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
