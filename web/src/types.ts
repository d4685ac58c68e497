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
  UserDataForkAnswer as UserDataFork,
} from "../../shared/http/responses.ts";
export type { ConnectionInfo, Desktop, DesktopState, Drill, Pool, Session };

import type {
  DesktopWithDelta,
  LogonResult,
  LogonTicketAnswer,
  PoolDescription,
  SessionDescription,
} from "../../shared/http/responses.ts";

export type PoolDetail = PoolDescription;
export type DesktopRow = DesktopWithDelta;
export type SessionDetail = SessionDescription;
export type LogonAnswer = LogonResult;
/** A 202 to a logon (a self-sizing pool with none free), and what its ticket's route answers. */
export type LogonTicket = LogonTicketAnswer;
