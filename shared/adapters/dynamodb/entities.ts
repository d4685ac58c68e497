/**
 * One codec per entity of the single table: its `entity` name, its key (from keys.ts) and how a
 * domain object becomes an item and back. Reading checks the item's `entity` at the boundary, so
 * a query that strays onto another kind of item fails loudly instead of passing it off as this one.
 */

import type {
  Drill,
  DrState,
  ReadinessReport,
  UserData,
  UserDataChange,
  UserDataFork,
} from "../../domain/dr-model.ts";
import type {
  Datastore,
  Desktop,
  Host,
  Image,
  ImageVersion,
  LogonTicket,
  Pool,
  QuotaLimits,
  Replica,
  Session,
  Tenant,
  TenantUsage,
} from "../../domain/model.ts";
import { keys, watch } from "./keys.ts";
import { freeIndex, tableSchema, watchIndex } from "./table-schema.ts";

export type Key = { pk: string; sk: string };
export type Item = Record<string, unknown>;

/** Attributes that only exist to key or index an item; never part of a domain object. */
const keyAttributes = new Set([
  "pk",
  "sk",
  freeIndex.pk,
  freeIndex.sk,
  watchIndex.pk,
  watchIndex.sk,
  "entity",
  "spread",
]);

/** The watch index's attributes of an item that waits in `partition` since `since` (none: not watched). */
const watched = (partition: string | undefined, since: string): Item =>
  partition ? { [watchIndex.pk]: partition, [watchIndex.sk]: since } : {};

export interface EntityCodec<T> {
  readonly name: string;
  key(value: T): Key;
  /** The item for a value: its key, its entity name, its attributes and any index attributes. */
  toItem(value: T, extra?: Item): Item;
  /** The index attributes that follow from a value (the watch index's), none for most entities. */
  indexAttributes(value: T): Item;
  /** The value of an item of this entity; throws for an item of another one. */
  fromItem(item: Item): T;
  /** Whether an item is of this entity (for reads that may see several kinds). */
  is(item: Item): boolean;
}

function entity<T extends object>(
  name: string,
  key: (value: T) => Key,
  /** `index`: the item's index attributes that follow from its value (the watch index's). */
  opts: { private?: string[]; index?: (value: T) => Item } = {},
): EntityCodec<T> {
  const hidden = new Set([...keyAttributes, ...(opts.private ?? [])]);
  return {
    name,
    key,
    toItem: (value, extra = {}) => ({
      ...key(value),
      entity: name,
      ...value,
      ...opts.index?.(value),
      ...extra,
    }),
    indexAttributes: (value) => opts.index?.(value) ?? {},
    fromItem(item) {
      if (item.entity !== name)
        throw new Error(
          `expected a ${name} item at ${String(item.pk)}/${String(item.sk)}, found ${String(item.entity)}`,
        );
      const out: Item = {};
      for (const [k, v] of Object.entries(item)) if (!hidden.has(k)) out[k] = v;
      return out as T;
    },
    is: (item) => item.entity === name,
  };
}

/** The tenant item keeps its key's hash so the tenant can be replicated with a working key. */
export type TenantRecord = Tenant & { apiKeyHash: string };
/** The key item carries a copy of the tenant, so authentication is one read (the hash stays private). */
export type ApiKeyRecord = Tenant & { apiKeyHash: string; failedOver?: boolean };
/** Dedicated pools: the user's own desktop. */
export type OwnerRecord = { tenantId: string; poolId: string; userId: string; desktopId: string };
/** A lease on one of a datastore's recompose slots (I/O storm control). */
/** How many tickets of a pool wait (the logon queue's head count). */
export interface LogonQueue {
  tenantId: string;
  poolId: string;
  waiting: number;
  /** The last ticket id of the page the server serves: no ticket joins at or before it. */
  servingThrough?: string;
}

/** The user's latest ticket in a pool: asking again while it waits gets the same ticket. */
export interface UserTicket {
  tenantId: string;
  poolId: string;
  userId: string;
  ticketId: string;
  /** The ticket's own (absent on pointers written before it was kept): past it, a new ticket replaces it unread. */
  validUntil?: string;
}

/** A pool-wide lease: one sizer, one ticket server at a time. */
export interface PoolLease {
  tenantId: string;
  poolId: string;
  name: string;
  holder: string;
  leaseExpiresAtMs: number;
}

/** One of the slots that cap concurrent disk jobs of a kind on a datastore or host (a lease). */
export interface DiskSlot {
  scope: string;
  slot: number;
  holder: string;
  leaseExpiresAtMs: number;
  acquiredAt: string;
}
/** A desktop's screen as its host took it; `expiresAt` (epoch seconds) lets DynamoDB delete it. */
export interface ScreenshotRecord {
  tenantId: string;
  requestId: string;
  png: string;
  expiresAt: number;
}
/** Who is copying a replica onto a datastore, until when. */
export interface ReplicaCopyLease {
  tenantId: string;
  imageId: string;
  version: number;
  datastoreId: string;
  holder: string;
  leaseExpiresAtMs: number;
}
/** The operator's overrides of a tenant's quotas. */
export type QuotaRecord = Partial<QuotaLimits> & { tenantId: string };
/** A tenant's usage counters, changed only in the transactions that add or remove what they count. */
export type TenantUsageRecord = TenantUsage & { tenantId: string };
/** The bytes the desktops on a datastore have reserved. */
export interface DatastoreUsageRecord {
  datastoreId: string;
  provisionedBytes: number;
}

export const entities = {
  tenant: entity<TenantRecord>("tenant", (t) => keys.tenant(t.tenantId)),
  apiKey: entity<ApiKeyRecord>("apiKey", (k) => keys.apiKey(k.apiKeyHash), { private: ["apiKeyHash"] }),
  quotas: entity<QuotaRecord>("quotas", (q) => keys.quotas(q.tenantId)),
  tenantUsage: entity<TenantUsageRecord>("tenantUsage", (u) => keys.tenantUsage(u.tenantId)),
  image: entity<Image>("image", (i) => keys.image(i.tenantId, i.imageId)),
  imageVersion: entity<ImageVersion>("imageVersion", (v) => keys.version(v.tenantId, v.imageId, v.version), {
    index: (v) =>
      watched(v.state === "PUBLISHING" ? watch.partition("PUBLISHING", v.imageId) : undefined, v.createdAt),
  }),
  pool: entity<Pool>("pool", (p) => keys.pool(p.tenantId, p.poolId), {
    index: (p) => watched(watch.partition("POOL", p.poolId), p.createdAt),
  }),
  desktop: entity<Desktop>("desktop", (d) => keys.desktop(d.tenantId, d.poolId, d.desktopId), {
    private: ["takenBy"],
    index: (d) =>
      watched(
        watch.desktopPartition(d.state, d.desktopId),
        d.state === "ASSIGNED"
          ? (d.sessionStartedAt ?? d.updatedAt)
          : d.resentAt && d.resentAt > d.updatedAt
            ? d.resentAt
            : d.updatedAt,
      ),
  }),
  /** The user's one active session in a pool (its lock); the session itself lives on its desktop. */
  userLock: entity<Session>("userLock", (s) => keys.userLock(s.tenantId, s.poolId, s.userId), {
    index: (s) => watched(watch.partition("LOCK", s.userId), s.startedAt),
  }),
  endedSession: entity<Session>("session", (s) => keys.session(s.tenantId, s.sessionId)),
  owner: entity<OwnerRecord>("owner", (o) => keys.owner(o.tenantId, o.poolId, o.userId)),
  datastore: entity<Datastore>("datastore", (d) => keys.datastore(d.datastoreId)),
  datastoreUsage: entity<DatastoreUsageRecord>("datastoreUsage", (u) => keys.datastoreUsage(u.datastoreId)),
  logonQueue: entity<LogonQueue>("logonQueue", (q) => keys.logonQueue(q.tenantId, q.poolId)),
  ticket: entity<LogonTicket>("ticket", (x) => keys.ticket(x.tenantId, x.poolId, x.ticketId)),
  settledTicket: entity<LogonTicket>(
    "settledTicket",
    (x) => keys.settledTicket(x.tenantId, x.poolId, x.ticketId),
    // Its expiry is the table's, not the ticket's.
    { private: [tableSchema.ttlAttribute] },
  ),
  userTicket: entity<UserTicket>("userTicket", (u) => keys.userTicket(u.tenantId, u.poolId, u.userId)),
  poolLease: entity<PoolLease>("poolLease", (l) => keys.poolLease(l.tenantId, l.poolId, l.name)),
  diskSlot: entity<DiskSlot>("diskSlot", (s) => keys.diskSlot(s.scope, s.slot)),
  replica: entity<Replica>("replica", (r) => keys.replica(r.tenantId, r.imageId, r.version, r.datastoreId)),
  replicaCopyLease: entity<ReplicaCopyLease>("replicaCopyLease", (l) =>
    keys.replicaCopyLease(l.tenantId, l.imageId, l.version, l.datastoreId),
  ),
  /** Behind replication (a version the peer has not verified), a user's data waits in the watch index. */
  userData: entity<UserData>("userData", (u) => keys.userData(u.tenantId, u.userId), {
    index: (u) =>
      watched(
        u.version > u.replicatedVersion ? watch.partition("BEHIND", u.userId) : undefined,
        u.lastChangeAt,
      ),
  }),
  userDataChange: entity<UserDataChange>("userDataChange", (c) =>
    keys.userDataChange(c.tenantId, c.userId, c.version),
  ),
  userDataFork: entity<UserDataFork>("userDataFork", (f) => keys.userDataFork(f.tenantId, f.forkId)),
  drill: entity<Drill>("drill", (d) => keys.drill(d.tenantId, d.drillId)),
  host: entity<Host>("host", (h) => keys.host(h.hostId)),
  screenshot: entity<ScreenshotRecord>("screenshot", (s) => keys.screenshot(s.tenantId, s.requestId)),
  drState: entity<DrState>("drState", (s) => keys.drState(s.tenantId)),
  readiness: entity<ReadinessReport>("readiness", (r) => keys.readiness(r.tenantId)),
};
