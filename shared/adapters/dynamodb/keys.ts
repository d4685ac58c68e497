import { type DesktopState, isTransitional } from "../../domain/desktop-state.ts";

/**
 * The one key scheme of the single table (DESIGN.md §2): every key is prefixed by its tenant, so
 * nothing a tenant owns can be addressed with another tenant's id.
 *
 *   entity        pk                          sk
 *   tenant        TENANT#<t>                  TENANT
 *   api key       APIKEY#<sha256>             APIKEY
 *   quotas        TENANT#<t>                  QUOTAS        (the operator's overrides of the defaults)
 *   tenant usage  TENANT#<t>                  USAGE         (desktops, their bytes, images: what quotas limit)
 *   image         TENANT#<t>                  IMAGE#<i>
 *   version       TENANT#<t>                  VERSION#<i>#<n, zero-padded>
 *   pool          TENANT#<t>                  POOL#<p>
 *   ended session TENANT#<t>                  SESSION#<s>   (an active one lives on its desktop)
 *   desktop       TENANT#<t>#POOL#<p>         DESKTOP#<d>
 *   user lock     TENANT#<t>#POOL#<p>         USER#<u>      (the user's one active session in the pool)
 *   owner         TENANT#<t>#POOL#<p>         OWNER#<u>     (dedicated pools: the user's own desktop)
 *   logon queue   TENANT#<t>#POOL#<p>         QUEUE         (how many tickets wait)
 *   ticket        TENANT#<t>#POOL#<p>         TICKET#<ticket id, time-ordered> (a waiting logon)
 *   settled ticket TENANT#<t>#POOL#<p>        SETTLED#<ticket id> (served or expired; a day)
 *   user ticket   TENANT#<t>#POOL#<p>         TICKETUSER#<u> (the user's latest ticket: asking again gets it)
 *   pool lease    TENANT#<t>#POOL#<p>         LEASE#<name>  (one sizer / one ticket server at a time)
 *   replica       TENANT#<t>                  REPLICA#<i>#<n, zero-padded>#<datastore>
 *   copy lease    TENANT#<t>                  REPLICA_COPY#<i>#<n>#<datastore> (who copies the replica)
 *   datastore     DATASTORES                  DATASTORE#<ds>   (region-wide, operator-owned)
 *   ds usage      DATASTORES                  USAGE#<ds>       (bytes reserved by desktops)
 *   disk-job slot DATASTORES                  SLOT#<scope>#<slot>  (a lease: clone-storm caps; scope = datastore or host, and kind)
 *   turn          DATASTORES                  TURN#<name>      (when the reconciler last did a periodic task:
 *                                                               a datastore's sweep, the recount of reservations)
 *   user data     TENANT#<t>                  USERDATA#<u>  (the user's data disk: version, checksum, replication)
 *   data change   TENANT#<t>#USERDATA         CHANGE#<u>#<n, zero-padded> (one committed session's delta)
 *   data fork     TENANT#<t>                  FORK#<f>      (user data kept outside the history, until resolved)
 *   DR drill      TENANT#<t>                  DRILL#<d>
 *   DR state      TENANT#<t>                  DR            (failed over or not; replicated config sync)
 *   readiness     TENANT#<t>                  READINESS     (the latest DR readiness report, checked or received)
 *   host          HOSTS                       HOST#<h>      (a hypervisor host's last heartbeat)
 *   screenshot    TENANT#<t>                  SCREENSHOT#<request> (a desktop's screen, for a minute)
 *   schema marker SCHEMA                      WATCH         (which watch-index backfills the table has had)
 *   metric step   TENANT#<t>#METRICS          <step start, ISO>#<name>[#<pool>] (count and sum of a figure, a week;
 *                                                               a per-pool figure's step names its pool)
 *
 * The table itself (keys, GSI1, TTL) is described in table-schema.ts; entity codecs in entities.ts.
 *
 * GSI1 is sparse: only AVAILABLE desktops carry gsi1pk = FREE#<t>#<p>; gsi1sk is the desktop's
 * `spread` token, evenly spread over the key space so that concurrent logons rarely collide.
 *
 * GSI2 (the watch index) is sparse too: gsi2pk = <kind>#<shard>, gsi2sk = the ISO time since
 * which the item waits. Kinds: TRANSIT (a desktop in a transitional state or ERROR: since its last
 * change or re-send), ASSIGNED (a desktop with a session: since the logon), LOCK (a user's lock:
 * since the logon), PUBLISHING (an image version: since its creation), POOL (every pool, since its
 * creation: the reconciler's recount of reservations reads them all), BEHIND (a user's data whose
 * latest committed version the peer region has not verified yet: since that change). Each kind is spread over
 * `watchShards` partitions by id, so that a storm of writes never lands on one index partition;
 * the reconciler queries every shard of a kind.
 */

/** How many partitions each kind of the watch index is spread over. */
export const watchShards = 4;
export type WatchKind = "TRANSIT" | "ASSIGNED" | "LOCK" | "PUBLISHING" | "POOL" | "BEHIND";

/** A small stable hash of an id (FNV-1a), for its shard. */
function shardOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (h >>> 0) % watchShards;
}

export const watch = {
  partition: (kind: WatchKind, id: string) => `${kind}#${shardOf(id)}`,
  partitions: (kind: WatchKind) => Array.from({ length: watchShards }, (_, i) => `${kind}#${i}`),
  /** A desktop's watch partition in a state (undefined: not watched, e.g. AVAILABLE). */
  desktopPartition(state: DesktopState, desktopId: string): string | undefined {
    if (isTransitional(state)) return watch.partition("TRANSIT", desktopId);
    if (state === "ASSIGNED") return watch.partition("ASSIGNED", desktopId);
    return undefined;
  },
};

export const keys = {
  tenant: (t: string) => ({ pk: `TENANT#${t}`, sk: "TENANT" }),
  apiKey: (hash: string) => ({ pk: `APIKEY#${hash}`, sk: "APIKEY" }),
  quotas: (t: string) => ({ pk: `TENANT#${t}`, sk: "QUOTAS" }),
  tenantUsage: (t: string) => ({ pk: `TENANT#${t}`, sk: "USAGE" }),
  image: (t: string, i: string) => ({ pk: `TENANT#${t}`, sk: `IMAGE#${i}` }),
  imagePrefix: "IMAGE#",
  version: (t: string, i: string, n: number) => ({
    pk: `TENANT#${t}`,
    sk: `VERSION#${i}#${String(n).padStart(6, "0")}`,
  }),
  versionPrefix: (i: string) => `VERSION#${i}#`,
  pool: (t: string, p: string) => ({ pk: `TENANT#${t}`, sk: `POOL#${p}` }),
  poolPrefix: "POOL#",
  session: (t: string, s: string) => ({ pk: `TENANT#${t}`, sk: `SESSION#${s}` }),
  poolPartition: (t: string, p: string) => `TENANT#${t}#POOL#${p}`,
  desktop: (t: string, p: string, d: string) => ({ pk: `TENANT#${t}#POOL#${p}`, sk: `DESKTOP#${d}` }),
  desktopPrefix: "DESKTOP#",
  userLock: (t: string, p: string, u: string) => ({ pk: `TENANT#${t}#POOL#${p}`, sk: `USER#${u}` }),
  freeDesktops: (t: string, p: string) => `FREE#${t}#${p}`,
  owner: (t: string, p: string, u: string) => ({ pk: `TENANT#${t}#POOL#${p}`, sk: `OWNER#${u}` }),
  replica: (t: string, i: string, n: number, ds: string) => ({
    pk: `TENANT#${t}`,
    sk: `REPLICA#${i}#${String(n).padStart(6, "0")}#${ds}`,
  }),
  replicaPrefix: (i?: string, n?: number) =>
    i === undefined ? "REPLICA#" : `REPLICA#${i}#${n === undefined ? "" : `${String(n).padStart(6, "0")}#`}`,
  replicaCopyLease: (t: string, i: string, n: number, ds: string) => ({
    pk: `TENANT#${t}`,
    sk: `REPLICA_COPY#${i}#${String(n).padStart(6, "0")}#${ds}`,
  }),
  hostsPartition: "HOSTS",
  host: (h: string) => ({ pk: "HOSTS", sk: `HOST#${h}` }),
  metricsPartition: (t: string) => `TENANT#${t}#METRICS`,
  metricStep: (t: string, bucketIso: string, name: string, poolId?: string) => ({
    pk: `TENANT#${t}#METRICS`,
    sk: poolId === undefined ? `${bucketIso}#${name}` : `${bucketIso}#${name}#${poolId}`,
  }),
  /** A metric step's sort key read back: its step (ISO), figure and pool (a per-pool figure's). */
  parseMetricStep(sk: string) {
    const at = sk.indexOf("#");
    const rest = sk.slice(at + 1);
    const cut = rest.indexOf("#");
    return {
      bucketIso: sk.slice(0, at),
      name: cut < 0 ? rest : rest.slice(0, cut),
      poolId: cut < 0 ? undefined : rest.slice(cut + 1),
    };
  },
  screenshot: (t: string, requestId: string) => ({ pk: `TENANT#${t}`, sk: `SCREENSHOT#${requestId}` }),
  datastoresPartition: "DATASTORES",
  datastore: (ds: string) => ({ pk: "DATASTORES", sk: `DATASTORE#${ds}` }),
  datastorePrefix: "DATASTORE#",
  datastoreUsage: (ds: string) => ({ pk: "DATASTORES", sk: `USAGE#${ds}` }),
  usagePrefix: "USAGE#",
  diskSlot: (scope: string, slot: number) => ({ pk: "DATASTORES", sk: `SLOT#${scope}#${slot}` }),
  diskSlotPrefix: (scope: string) => ({ pk: "DATASTORES", sk: `SLOT#${scope}#` }),
  turn: (name: string) => ({ pk: "DATASTORES", sk: `TURN#${name}` }),
  userData: (t: string, u: string) => ({ pk: `TENANT#${t}`, sk: `USERDATA#${u}` }),
  userDataPrefix: "USERDATA#",
  userDataChange: (t: string, u: string, n: number) => ({
    pk: `TENANT#${t}#USERDATA`,
    sk: `CHANGE#${u}#${String(n).padStart(9, "0")}`,
  }),
  userDataChangePartition: (t: string) => `TENANT#${t}#USERDATA`,
  userDataChangePrefix: "CHANGE#",
  userDataFork: (t: string, f: string) => ({ pk: `TENANT#${t}`, sk: `FORK#${f}` }),
  userDataForkPrefix: "FORK#",
  logonQueue: (t: string, p: string) => ({ pk: `TENANT#${t}#POOL#${p}`, sk: "QUEUE" }),
  ticket: (t: string, p: string, ticketId: string) => ({
    pk: `TENANT#${t}#POOL#${p}`,
    sk: `TICKET#${ticketId}`,
  }),
  ticketPrefix: "TICKET#",
  /** A served or expired ticket (kept a day, so its holder can still read it). */
  settledTicket: (t: string, p: string, ticketId: string) => ({
    pk: `TENANT#${t}#POOL#${p}`,
    sk: `SETTLED#${ticketId}`,
  }),
  userTicket: (t: string, p: string, u: string) => ({ pk: `TENANT#${t}#POOL#${p}`, sk: `TICKETUSER#${u}` }),
  poolLease: (t: string, p: string, name: string) => ({ pk: `TENANT#${t}#POOL#${p}`, sk: `LEASE#${name}` }),
  drill: (t: string, d: string) => ({ pk: `TENANT#${t}`, sk: `DRILL#${d}` }),
  drState: (t: string) => ({ pk: `TENANT#${t}`, sk: "DR" }),
  readiness: (t: string) => ({ pk: `TENANT#${t}`, sk: "READINESS" }),
  schemaMarker: { pk: "SCHEMA", sk: "WATCH" },
};
