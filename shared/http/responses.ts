/**
 * Response schemas of the v1 API: what each route answers, for the OpenAPI document and for the
 * tests that check every answer against it. The entity schemas are tied to the domain's types at
 * compile time (see the checks at the end), so the contract cannot drift from the code silently.
 */
import { z } from "zod";
import type { Drill, DrState, ReadinessReport, UserDataFork } from "../domain/dr-model.ts";
import type {
  Datastore,
  Desktop,
  Image,
  ImageVersion,
  Pool,
  Session,
  Tenant,
  TenantQuotas,
} from "../domain/model.ts";

import type {
  drill,
  drState,
  metricSeries,
  readinessReport,
  readinessStatus,
  replicationStatus,
  userDataFork,
} from "./responses/dr.ts";
import type {
  datastore,
  datastoreUsage,
  desktop,
  desktopWithDelta,
  image,
  imageVersion,
  logonResult,
  logonTicket,
  pool,
  poolDescription,
  session,
  sessionDescription,
  storageReport,
  tenant,
  tenantQuotas,
} from "./responses/entities.ts";

export * from "./responses/dr.ts";
export * from "./responses/entities.ts";

export const health = z.strictObject({ status: z.literal("ok") });
export const items = <T extends z.ZodType>(item: T) => z.strictObject({ items: z.array(item) });

/*
 * Compile-time ties to the domain: each entity type must fit its schema and the schema's type
 * must fit the entity, so a field added to one and not the other fails the typecheck.
 */
type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
// Optional fields make any two types mutually assignable: the keys must be the same too.
type Same<A, B> = Mutual<A, B> extends true ? Mutual<keyof A, keyof B> : false;
type Tied<T extends true> = T;
export type EntityChecks = [
  Tied<Same<Tenant, z.infer<typeof tenant>>>,
  Tied<Same<Datastore, z.infer<typeof datastore>>>,
  Tied<Same<Image, z.infer<typeof image>>>,
  Tied<Same<ImageVersion, z.infer<typeof imageVersion>>>,
  Tied<Same<Pool, z.infer<typeof pool>>>,
  Tied<Same<Desktop, z.infer<typeof desktop>>>,
  Tied<Same<Session, z.infer<typeof session>>>,
  Tied<Same<Drill, z.infer<typeof drill>>>,
  Tied<Same<DrState, z.infer<typeof drState>>>,
  Tied<Same<ReadinessReport, z.infer<typeof readinessReport>>>,
  Tied<Same<UserDataFork, z.infer<typeof userDataFork>>>,
  Tied<Same<TenantQuotas, z.infer<typeof tenantQuotas>>>,
];

/** The answers as types, for the API's own clients (the CLI, the web console): one contract. */
export type PoolDescription = z.infer<typeof poolDescription>;
export type RecomposeProgress = NonNullable<PoolDescription["recompose"]>;
export type DesktopWithDelta = z.infer<typeof desktopWithDelta>;
export type SessionDescription = z.infer<typeof sessionDescription>;
export type LogonResult = z.infer<typeof logonResult>;
export type StorageReport = z.infer<typeof storageReport>;
export type SpaceFigures = StorageReport["total"];
export type ReplicationStatus = z.infer<typeof replicationStatus>;
export type UserDataForkAnswer = z.infer<typeof userDataFork>;
export type LogonTicketAnswer = z.infer<typeof logonTicket>;
export type ReadinessStatus = z.infer<typeof readinessStatus>;
export type DatastoreUsage = z.infer<typeof datastoreUsage>;
export type MetricSeries = z.infer<typeof metricSeries>;
