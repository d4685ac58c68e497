/** The API's answers as the console reads them: the types of the API's own response schemas. */
import type { DesktopState } from "../../shared/domain/desktop-state.ts";
import type { Drill } from "../../shared/domain/dr-model.ts";
import type { ConnectionInfo, Desktop, Pool, Session } from "../../shared/domain/model.ts";

export type {
  DatastoreUsage as Datastore,
  MetricSeries as Metrics,
  ReadinessStatus as Readiness,
  RecomposeProgress,
  ReplicationStatus as Replication,
  SpaceFigures,
  StorageReport,
} from "../../shared/http/responses.ts";
export type { ConnectionInfo, Desktop, DesktopState, Drill, Pool, Session };

import type {
  DesktopWithDelta,
  LogonResult,
  PoolDescription,
  SessionDescription,
} from "../../shared/http/responses.ts";

export type PoolDetail = PoolDescription;
export type DesktopRow = DesktopWithDelta;
export type SessionDetail = SessionDescription;
export type LogonAnswer = LogonResult;
