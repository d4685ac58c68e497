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
}

export type PoolState = "ACTIVE" | "DELETING";

export interface Pool {
  tenantId: string;
  poolId: string;
  name: string;
  imageId: string;
  imageVersion: number;
  assignment: "floating";
  cloneType: "linked";
  refreshPolicy: "refresh";
  size: number;
  datastoreId: string;
  state: PoolState;
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
  endedBy?: "api" | "event" | "pool-delete";
}

export interface ConnectionInfo {
  protocol: "rdp";
  host: string;
  port: number;
}

export function connectionInfo(desktop: Pick<Desktop, "desktopId" | "poolId">): ConnectionInfo {
  return { protocol: "rdp", host: `${desktop.desktopId}.${desktop.poolId}.desktops.internal`, port: 3389 };
}
