/** The API's answers as the console reads them; the entities are the domain's own types. */
import type { DesktopState } from "../../shared/domain/desktop-state.ts";
import type { ConnectionInfo, Desktop, Drill, Pool, Session } from "../../shared/domain/model.ts";

export type { ConnectionInfo, Desktop, DesktopState, Drill, Pool, Session };

export interface RecomposeProgress {
  fromVersion: number;
  toVersion: number;
  startedAt: string;
  done: number;
  pending: number;
  failed: number;
}

export type PoolDetail = Omit<Pool, "recompose"> & {
  desktopCounts: Record<DesktopState, number>;
  recompose?: RecomposeProgress;
};

export type DesktopRow = Desktop & { deltaBytes?: number };

export type SessionDetail = Session & {
  userData?: { state: string; version?: number; mode?: string };
  connection?: ConnectionInfo;
};

export type LogonAnswer = Session & {
  connection: ConnectionInfo;
  reconnected: boolean;
  userData?: { state: string };
};

export interface SpaceFigures {
  usedBytes: number;
  provisionedBytes: number;
  fullCloneBytes: number;
  savedBytes: number;
  replicaBytes: number;
  deltaBytes: number;
  desktops: number;
}

export interface StorageReport {
  total: SpaceFigures;
  datastores: (SpaceFigures & { datastoreId: string })[];
  pools: (SpaceFigures & { poolId: string; name: string; cloneType: string })[];
}

export interface Replication {
  region: string;
  peer?: string;
  pendingChanges: number;
  oldestPendingAgeMs: number;
  bytesShipped: number;
  rpoP50Ms?: number;
  rpoP99Ms?: number;
  users: {
    userId: string;
    version: number;
    replicatedVersion: number;
    lagVersions: number;
    lastChangeAt: string;
    oldestUnreplicatedAt?: string;
  }[];
  dr: { standbyPools: string[]; imagesShipped: number; failedOverAt?: string; configAppliedAt?: string };
}

export interface Datastore {
  datastoreId: string;
  path?: string;
  hostId?: string;
  capacityGiB: number;
  overcommit: number;
  provisionedBytes?: number;
  effectiveFreeBytes?: number;
  provisionedPercent?: number;
}

export interface Metrics {
  stepSeconds: number;
  from: string;
  to: string;
  series: {
    name: string;
    unit: "Count" | "Milliseconds" | "Seconds";
    points: { t: string; count: number; sum: number; max: number }[];
  }[];
}
