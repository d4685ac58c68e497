import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  BatchWriteCommand,
  DeleteCommand,
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { assertTransition } from "../../domain/desktop-state.ts";
import { parseSessionId } from "../../domain/ids.ts";
import type {
  Datastore,
  DatastoreUsage,
  Desktop,
  Image,
  ImageVersion,
  Pool,
  Replica,
  Session,
  Tenant,
} from "../../domain/model.ts";
import type {
  AssignResult,
  DatastoreRepository,
  DesktopRepository,
  EndSessionResult,
  ImageRepository,
  PoolRepository,
  ReplicaRepository,
  Reservation,
  SessionRepository,
  TenantRepository,
} from "../../ports.ts";
import { freeIndex, fromItem, keys } from "./keys.ts";
import { tableReads } from "./table.ts";

/*
 * Where a desktop sits in the free index, and where a logon starts looking. Both follow the
 * golden-ratio sequence (slot * phi mod 1): its points are as evenly spread as N points can be, so
 * in a logon storm the k-th concurrent logon of a process starts next to a different free desktop
 * than its neighbours instead of racing them for the same one. Desktops without a slot, and each
 * process's starting offset, are random.
 */
const phi = (Math.sqrt(5) - 1) / 2;
const tokenAt = (fraction: number) =>
  Math.floor((fraction - Math.floor(fraction)) * 2 ** 52)
    .toString(16)
    .padStart(13, "0");
const spreadToken = (slot?: number) => tokenAt(slot === undefined ? Math.random() : slot * phi);

/**
 * Each process walks a pool's slots round-robin from a random start, probing at a slot's own place:
 * its concurrent logons then aim at distinct desktops. The pool's size is only a hint for this
 * walk (read once a minute), never a correctness input: the claim itself is conditional.
 */
const probeCursors = new Map<string, { next: number; size: Promise<number>; readAt: number }>();

const isConditionFailure = (err: unknown) => (err as Error).name === "ConditionalCheckFailedException";

function cancellationCodes(err: unknown): string[] | undefined {
  if (!(err instanceof TransactionCanceledException)) return undefined;
  return (err.CancellationReasons ?? []).map((r) => r.Code ?? "None");
}

/**
 * A floating logon writes the user's lock, then claims the desktop: two single-item writes, not a
 * transaction (on DynamoDB Local a transaction costs about two updates). A lock whose desktop never
 * took its session (a logon that died between the two writes) is stale after this long and is
 * released by the next logon of that user. The two writes follow each other within one running
 * invocation (SDK retries take seconds), so a live logon is never this slow between them.
 */
const defaultLockStaleAfterMs = 60_000;

export function dynamoRepositories(
  doc: DynamoDBDocumentClient,
  table: string,
  opts: { lockStaleAfterMs?: number } = {},
) {
  const lockStaleAfterMs = opts.lockStaleAfterMs ?? defaultLockStaleAfterMs;
  const { get, queryAll, byPrefix, scanAll } = tableReads(doc, table);

  const batchPut = async (items: Record<string, unknown>[]) => {
    for (let i = 0; i < items.length; i += 25) {
      let pending: Record<string, unknown>[] | undefined = items
        .slice(i, i + 25)
        .map((Item) => ({ PutRequest: { Item } }));
      for (let attempt = 0; pending && pending.length > 0; attempt++) {
        if (attempt > 10) throw new Error("batch write kept returning unprocessed items");
        if (attempt > 0) await new Promise((r) => setTimeout(r, 2 ** attempt * 10));
        const out = await doc.send(new BatchWriteCommand({ RequestItems: { [table]: pending as never } }));
        pending = out.UnprocessedItems?.[table] as Record<string, unknown>[] | undefined;
      }
    }
  };

  const tenants: TenantRepository = {
    async create(tenant: Tenant, apiKeyHash: string) {
      await doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: table,
                // The key hash rides along so the tenant can be replicated with a working key.
                Item: { ...keys.tenant(tenant.tenantId), entity: "tenant", ...tenant, apiKeyHash },
                ConditionExpression: "attribute_not_exists(pk)",
              },
            },
            // The key item carries a copy of the tenant so authentication is one read.
            {
              Put: {
                TableName: table,
                Item: { ...keys.apiKey(apiKeyHash), entity: "apiKey", ...tenant },
                ConditionExpression: "attribute_not_exists(pk)",
              },
            },
          ],
        }),
      );
    },
    findByApiKeyHash: (hash) => get<Tenant>(keys.apiKey(hash)),
  };

  const images: ImageRepository = {
    async createImage(image: Image) {
      await doc.send(
        new PutCommand({
          TableName: table,
          Item: { ...keys.image(image.tenantId, image.imageId), entity: "image", ...image },
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      );
    },
    getImage: (t, i) => get<Image>(keys.image(t, i), true),
    listImages: (t) => byPrefix<Image>(keys.tenant(t).pk, keys.imagePrefix),
    async addVersion(t, i, make) {
      // Optimistic: bump latestVersion only if nobody else did, in the same transaction as the version.
      for (let attempt = 0; attempt < 20; attempt++) {
        const image = await get<Image>(keys.image(t, i), true);
        if (!image) throw new Error(`image ${i} vanished`);
        const version = make(image.latestVersion + 1);
        try {
          await doc.send(
            new TransactWriteCommand({
              TransactItems: [
                {
                  Update: {
                    TableName: table,
                    Key: keys.image(t, i),
                    UpdateExpression: "SET latestVersion = :next",
                    ConditionExpression: "latestVersion = :current",
                    ExpressionAttributeValues: { ":next": version.version, ":current": image.latestVersion },
                  },
                },
                {
                  Put: {
                    TableName: table,
                    Item: { ...keys.version(t, i, version.version), entity: "imageVersion", ...version },
                    ConditionExpression: "attribute_not_exists(pk)",
                  },
                },
              ],
            }),
          );
          return version;
        } catch (err) {
          if (!cancellationCodes(err)) throw err;
        }
      }
      throw new Error(`could not allocate a version of image ${i}: too much contention`);
    },
    getVersion: (t, i, n) => get<ImageVersion>(keys.version(t, i, n), true),
    listVersions: (t, i) => byPrefix<ImageVersion>(keys.tenant(t).pk, keys.versionPrefix(i)),
    async completeVersion(t, i, n, result) {
      const names: Record<string, string> = {};
      const values: Record<string, unknown> = { ":publishing": "PUBLISHING" };
      const sets: string[] = [];
      for (const [k, v] of Object.entries(result)) {
        if (v === undefined) continue;
        names[`#${k}`] = k;
        values[`:${k}`] = v;
        sets.push(`#${k} = :${k}`);
      }
      names["#state"] = "state";
      try {
        await doc.send(
          new UpdateCommand({
            TableName: table,
            Key: keys.version(t, i, n),
            UpdateExpression: `SET ${sets.join(", ")}`,
            ConditionExpression: "#state = :publishing",
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
          }),
        );
      } catch (err) {
        if (!isConditionFailure(err)) throw err;
      }
    },
    async retireVersion(t, i, n, at) {
      await doc.send(
        new UpdateCommand({
          TableName: table,
          Key: keys.version(t, i, n),
          UpdateExpression: "SET retiredAt = if_not_exists(retiredAt, :at)",
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeValues: { ":at": at },
        }),
      );
    },
    async removeVersion(t, i, n) {
      await doc.send(new DeleteCommand({ TableName: table, Key: keys.version(t, i, n) }));
    },
  };

  // A reservation is a conditional add on the datastore's usage item: never past its limit.
  const reserve = (r: Reservation) => ({
    Update: {
      TableName: table,
      Key: keys.datastoreUsage(r.datastoreId),
      UpdateExpression:
        "SET datastoreId = :ds, provisionedBytes = if_not_exists(provisionedBytes, :zero) + :bytes",
      ConditionExpression: "attribute_not_exists(provisionedBytes) OR provisionedBytes <= :max",
      ExpressionAttributeValues: {
        ":ds": r.datastoreId,
        ":zero": 0,
        ":bytes": r.bytes,
        ":max": r.limitBytes - r.bytes,
      },
    },
  });

  /** Runs a pool write with its reservations; false when a condition refused it. */
  const withReservations = async (poolWrite: Record<string, unknown>, reservations: Reservation[]) => {
    try {
      await doc.send(
        new TransactWriteCommand({ TransactItems: [poolWrite, ...reservations.map(reserve)] as never }),
      );
      return true;
    } catch (err) {
      const codes = cancellationCodes(err);
      if (!codes) throw err;
      if (codes.includes("TransactionConflict")) return false;
      if (codes.some((c) => c === "ConditionalCheckFailed")) return false;
      throw err;
    }
  };

  const desktopItem = (d: Desktop) => ({
    ...keys.desktop(d.tenantId, d.poolId, d.desktopId),
    entity: "desktop",
    ...d,
    spread: spreadToken(d.slot),
    ...(d.state === "AVAILABLE"
      ? { gsi1pk: keys.freeDesktops(d.tenantId, d.poolId), gsi1sk: spreadToken(d.slot) }
      : {}),
  });

  const pools: PoolRepository = {
    async create(pool, desktops, reservations) {
      const put = {
        Put: {
          TableName: table,
          Item: { ...keys.pool(pool.tenantId, pool.poolId), entity: "pool", ...pool },
          ConditionExpression: "attribute_not_exists(pk)",
        },
      };
      if (!(await withReservations(put, reservations))) return false;
      await batchPut(desktops.map(desktopItem));
      return true;
    },
    async grow(pool, newSize, desktops, reservations) {
      const update = {
        Update: {
          TableName: table,
          Key: keys.pool(pool.tenantId, pool.poolId),
          UpdateExpression: "SET #size = :new",
          ConditionExpression: "#size = :old AND #state = :active",
          ExpressionAttributeNames: { "#size": "size", "#state": "state" },
          ExpressionAttributeValues: { ":new": newSize, ":old": pool.size, ":active": "ACTIVE" },
        },
      };
      if (!(await withReservations(update, reservations))) return false;
      await batchPut(desktops.map(desktopItem));
      return true;
    },
    async startRecompose(t, p, imageVersion, recompose) {
      await doc.send(
        new UpdateCommand({
          TableName: table,
          Key: keys.pool(t, p),
          UpdateExpression: "SET imageVersion = :v, recompose = :r",
          ConditionExpression: "#state = :active",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: { ":v": imageVersion, ":r": recompose, ":active": "ACTIVE" },
        }),
      );
    },
    get: (t, p) => get<Pool>(keys.pool(t, p), true),
    list: (t) => byPrefix<Pool>(keys.tenant(t).pk, keys.poolPrefix),
    async markDeleting(t, p) {
      await doc.send(
        new UpdateCommand({
          TableName: table,
          Key: keys.pool(t, p),
          UpdateExpression: "SET #state = :deleting",
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: { ":deleting": "DELETING" },
        }),
      );
    },
    async remove(t, p) {
      await doc.send(new DeleteCommand({ TableName: table, Key: keys.pool(t, p) }));
    },
  };

  const desktops: DesktopRepository = {
    get: (t, p, d) => get<Desktop>(keys.desktop(t, p, d), true),
    list: (t, p) => byPrefix<Desktop>(keys.poolPartition(t, p), keys.desktopPrefix),
    async findFree(t, p, limit) {
      const query = async (condition: string, token: string, max: number) => {
        const out = await doc.send(
          new QueryCommand({
            TableName: table,
            IndexName: freeIndex.name,
            KeyConditionExpression: `${freeIndex.pk} = :pk AND ${condition}`,
            ExpressionAttributeValues: { ":pk": keys.freeDesktops(t, p), ":token": token },
            Limit: max,
          }),
        );
        return (out.Items ?? []).map((item) => fromItem<Desktop>(item));
      };
      const poolKey = keys.freeDesktops(t, p);
      let cursor = probeCursors.get(poolKey);
      if (!cursor || Date.now() - cursor.readAt > 60_000) {
        // Set before the read so that concurrent logons share one cursor (and one read).
        cursor = {
          next: cursor?.next ?? Math.floor(Math.random() * 1_000_000),
          size: get<Pool>(keys.pool(t, p)).then((pool) => Math.max(1, pool?.size ?? 1)),
          readAt: Date.now(),
        };
        if (probeCursors.size > 10_000) probeCursors.clear();
        probeCursors.set(poolKey, cursor);
      }
      const slot = cursor.next++;
      const token = tokenAt((slot % (await cursor.size)) * phi);
      const found = await query(`${freeIndex.sk} >= :token`, token, limit);
      if (found.length < limit)
        found.push(...(await query(`${freeIndex.sk} < :token`, token, limit - found.length)));
      return found;
    },
    async transition(d, from, to, changes = {}) {
      assertTransition(from, to);
      const sets = ["#state = :to", "updatedAt = :now"];
      const removes: string[] = [];
      const values: Record<string, unknown> = { ":from": from, ":to": to, ":now": new Date().toISOString() };
      // Names go through placeholders: some (e.g. `error`) are DynamoDB reserved words.
      const names: Record<string, string> = { "#state": "state" };
      for (const [k, v] of Object.entries(changes)) {
        sets.push(`#c_${k} = :c_${k}`);
        names[`#c_${k}`] = k;
        values[`:c_${k}`] = v;
      }
      if (to === "AVAILABLE") {
        // A dedicated desktop waits for its own user, who finds it through the owner item; a floating
        // one goes back into the free index at its own place (its `spread`, set at creation).
        if (!d.assignedUserId) {
          sets.push(`${freeIndex.pk} = :free`, `${freeIndex.sk} = if_not_exists(spread, :spread)`);
          values[":free"] = keys.freeDesktops(d.tenantId, d.poolId);
          values[":spread"] = spreadToken();
        }
        removes.push("sessionId", "userId", "sessionStartedAt", "#error");
        names["#error"] = "error";
      } else if (from === "AVAILABLE") {
        removes.push(freeIndex.pk, freeIndex.sk);
      }
      try {
        await doc.send(
          new UpdateCommand({
            TableName: table,
            Key: keys.desktop(d.tenantId, d.poolId, d.desktopId),
            UpdateExpression: `SET ${sets.join(", ")}${removes.length ? ` REMOVE ${removes.join(", ")}` : ""}`,
            ConditionExpression: "#state = :from",
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
          }),
        );
        return true;
      } catch (err) {
        if (isConditionFailure(err)) return false;
        throw err;
      }
    },
    async remove(d) {
      const remove = {
        Delete: {
          TableName: table,
          Key: keys.desktop(d.tenantId, d.poolId, d.desktopId),
          ConditionExpression: "attribute_exists(pk)",
        },
      };
      const release = d.provisionedBytes
        ? [
            {
              Update: {
                TableName: table,
                Key: keys.datastoreUsage(d.datastoreId),
                UpdateExpression: "ADD provisionedBytes :minus",
                ExpressionAttributeValues: { ":minus": -d.provisionedBytes },
              },
            },
          ]
        : [];
      try {
        await doc.send(new TransactWriteCommand({ TransactItems: [remove, ...release] }));
      } catch (err) {
        // Already removed (and released) by an earlier delivery of the same job.
        if (cancellationCodes(err)?.[0] !== "ConditionalCheckFailed") throw err;
      }
    },
    async replace(old, fresh) {
      try {
        await doc.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Delete: {
                  TableName: table,
                  Key: keys.desktop(old.tenantId, old.poolId, old.desktopId),
                  ConditionExpression: "#state = :deleting",
                  ExpressionAttributeNames: { "#state": "state" },
                  ExpressionAttributeValues: { ":deleting": "DELETING" },
                },
              },
              {
                Put: {
                  TableName: table,
                  Item: desktopItem(fresh),
                  ConditionExpression: "attribute_not_exists(pk)",
                },
              },
            ],
          }),
        );
        return true;
      } catch (err) {
        if (!cancellationCodes(err)) throw err;
        return false;
      }
    },
    // A scan, on purpose: rebalancing is a rare operator action.
    async listFreeOnDatastore(datastoreId) {
      return scanAll<Desktop>("entity = :desktop AND #state = :available AND datastoreId = :ds", {
        ":desktop": "desktop",
        ":available": "AVAILABLE",
        ":ds": datastoreId,
      });
    },
    // A scan, on purpose: the reconciler runs every few minutes off the request path.
    async listStuck(updatedBefore) {
      return scanAll<Desktop>(
        "entity = :desktop AND #state IN (:p, :r, :c, :d, :e) AND updatedAt < :cutoff",
        {
          ":desktop": "desktop",
          ":e": "ERROR",
          ":p": "PROVISIONING",
          ":r": "REFRESHING",
          ":c": "RECOMPOSING",
          ":d": "DELETING",
          ":cutoff": updatedBefore,
        },
      );
    },
  };

  const activeSessionOf = (d: Desktop): Session | undefined =>
    d.state === "ASSIGNED" && d.sessionId && d.userId
      ? {
          tenantId: d.tenantId,
          sessionId: d.sessionId,
          poolId: d.poolId,
          desktopId: d.desktopId,
          userId: d.userId,
          state: "ACTIVE",
          startedAt: d.sessionStartedAt ?? d.updatedAt,
        }
      : undefined;

  /*
   * A session lives on its desktop while ACTIVE (the id names the desktop) and in the user's
   * per-pool lock; when it ends, the same transaction writes its ENDED record. So there is never
   * a moment when a session can be found in neither place.
   */
  const releaseLock = async (t: string, p: string, u: string, sessionId: string) => {
    try {
      await doc.send(
        new DeleteCommand({
          TableName: table,
          Key: keys.userLock(t, p, u),
          ConditionExpression: "sessionId = :sid",
          ExpressionAttributeValues: { ":sid": sessionId },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  };

  /**
   * Lock, then claim. Invariant 1 holds because a desktop only ever holds the session named by
   * the user's lock: a second logon of the same user fails the lock's condition, and a lost race
   * for the desktop gives the lock back.
   */
  const claimFloating = async (desktop: Desktop, session: Session): Promise<AssignResult> => {
    const { tenantId: t, poolId: p, userId: u } = session;
    try {
      await doc.send(
        new PutCommand({
          TableName: table,
          Item: { ...keys.userLock(t, p, u), entity: "userLock", ...session },
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      );
    } catch (err) {
      if (isConditionFailure(err)) return { outcome: "user-has-session" };
      throw err;
    }
    try {
      await doc.send(
        new UpdateCommand({
          TableName: table,
          Key: keys.desktop(t, p, desktop.desktopId),
          UpdateExpression: `SET #state = :assigned, sessionId = :sid, userId = :uid, sessionStartedAt = :now, updatedAt = :now REMOVE ${freeIndex.pk}, ${freeIndex.sk}`,
          ConditionExpression: "#state = :available",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: {
            ":assigned": "ASSIGNED",
            ":available": "AVAILABLE",
            ":sid": session.sessionId,
            ":uid": u,
            ":now": session.startedAt,
          },
        }),
      );
      return { outcome: "assigned", session };
    } catch (err) {
      await releaseLock(t, p, u, session.sessionId);
      if (isConditionFailure(err)) return { outcome: "desktop-taken" };
      throw err;
    }
  };

  const sessions: SessionRepository = {
    async get(t, sid) {
      const ref = parseSessionId(sid);
      if (!ref) return undefined;
      const desktop = await get<Desktop>(keys.desktop(t, ref.poolId, ref.desktopId), true);
      if (desktop?.sessionId === sid) return activeSessionOf(desktop);
      return get<Session>(keys.session(t, sid), true);
    },
    async findActive(t, p, u) {
      const lock = await get<Session>(keys.userLock(t, p, u), true);
      if (!lock) return undefined;
      // The lock is the user's session only once its desktop holds it (see assign).
      const desktop = await get<Desktop>(keys.desktop(t, p, lock.desktopId), true);
      return desktop?.sessionId === lock.sessionId ? lock : undefined;
    },
    async releaseStaleLock(t, p, u) {
      const lock = await get<Session>(keys.userLock(t, p, u), true);
      if (!lock) return "none";
      const desktop = await get<Desktop>(keys.desktop(t, p, lock.desktopId), true);
      if (desktop?.sessionId === lock.sessionId) return "active";
      if (Date.parse(lock.startedAt) > Date.now() - lockStaleAfterMs) return "pending";
      await releaseLock(t, p, u, lock.sessionId);
      return "released";
    },
    ownedDesktop: async (t, p, u) => (await get<{ desktopId: string }>(keys.owner(t, p, u), true))?.desktopId,
    async assign(desktop: Desktop, session: Session, opts = {}): Promise<AssignResult> {
      const { tenantId: t, poolId: p } = session;
      if (!opts.dedicate) return claimFloating(desktop, session);
      // Dedicating: the desktop must be nobody's yet, and the user must own no other one.
      const dedication = opts.dedicate
        ? [
            {
              Put: {
                TableName: table,
                Item: { ...keys.owner(t, p, session.userId), entity: "owner", desktopId: desktop.desktopId },
                ConditionExpression: "attribute_not_exists(pk)",
              },
            },
          ]
        : [];
      try {
        await doc.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Update: {
                  TableName: table,
                  Key: keys.desktop(t, p, desktop.desktopId),
                  UpdateExpression: `SET #state = :assigned, sessionId = :sid, userId = :uid, sessionStartedAt = :now, updatedAt = :now${opts.dedicate ? ", assignedUserId = :uid" : ""} REMOVE ${freeIndex.pk}, ${freeIndex.sk}`,
                  ConditionExpression: opts.dedicate
                    ? "#state = :available AND attribute_not_exists(assignedUserId)"
                    : "#state = :available",
                  ExpressionAttributeNames: { "#state": "state" },
                  ExpressionAttributeValues: {
                    ":assigned": "ASSIGNED",
                    ":available": "AVAILABLE",
                    ":sid": session.sessionId,
                    ":uid": session.userId,
                    ":now": session.startedAt,
                  },
                },
              },
              {
                Put: {
                  TableName: table,
                  Item: { ...keys.userLock(t, p, session.userId), entity: "userLock", ...session },
                  ConditionExpression: "attribute_not_exists(pk)",
                },
              },
              ...dedication,
            ],
          }),
        );
        return { outcome: "assigned", session };
      } catch (err) {
        const codes = cancellationCodes(err);
        if (!codes) throw err;
        if (codes[1] === "ConditionalCheckFailed" || codes[2] === "ConditionalCheckFailed")
          return { outcome: "user-has-session" };
        // The desktop was taken, or another transaction held one of the items: try another desktop.
        return { outcome: "desktop-taken" };
      }
    },
    async end(session, endedAt, endedBy): Promise<EndSessionResult> {
      const { tenantId: t, poolId: p, sessionId: sid } = session;
      const ended: Session = { ...session, state: "ENDED", endedAt, endedBy };
      try {
        await doc.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Update: {
                  TableName: table,
                  Key: keys.desktop(t, p, session.desktopId),
                  UpdateExpression:
                    "SET #state = :refreshing, lastSessionId = :sid, updatedAt = :at REMOVE sessionId, userId, sessionStartedAt",
                  ConditionExpression: "#state = :assigned AND sessionId = :sid",
                  ExpressionAttributeNames: { "#state": "state" },
                  ExpressionAttributeValues: {
                    ":refreshing": "REFRESHING",
                    ":assigned": "ASSIGNED",
                    ":sid": sid,
                    ":at": endedAt,
                  },
                },
              },
              {
                Delete: {
                  TableName: table,
                  Key: keys.userLock(t, p, session.userId),
                  ConditionExpression: "sessionId = :sid",
                  ExpressionAttributeValues: { ":sid": sid },
                },
              },
              {
                Put: {
                  TableName: table,
                  Item: { ...keys.session(t, sid), entity: "session", ...ended },
                  ConditionExpression: "attribute_not_exists(pk)",
                },
              },
            ],
          }),
        );
        return { outcome: "ended", desktop: { tenantId: t, poolId: p, desktopId: session.desktopId } };
      } catch (err) {
        const codes = cancellationCodes(err);
        if (!codes) throw err;
        if (codes.includes("TransactionConflict"))
          throw new Error(`logoff of ${sid} collided with another write; retry`);
        return { outcome: "not-active" };
      }
    },
  };

  const datastores: DatastoreRepository = {
    async put(ds: Datastore) {
      await doc.send(
        new PutCommand({
          TableName: table,
          Item: { ...keys.datastore(ds.datastoreId), entity: "datastore", ...ds },
        }),
      );
    },
    get: (id) => get<Datastore>(keys.datastore(id), true),
    async list() {
      // Registration and usage items share one partition: one query reads both.
      const items = await queryAll<Partial<DatastoreUsage> & { holder?: string }>({
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": keys.datastoresPartition },
        ConsistentRead: true,
      });
      const usage = new Map<string, number>();
      for (const item of items)
        if (item.path === undefined && item.holder === undefined && item.datastoreId)
          usage.set(item.datastoreId, item.provisionedBytes ?? 0);
      return items
        .filter((item): item is DatastoreUsage => item.path !== undefined)
        .map((ds) => ({ ...ds, provisionedBytes: usage.get(ds.datastoreId) ?? 0 }));
    },
    async provisionedBytes(id) {
      return (await get<{ provisionedBytes?: number }>(keys.datastoreUsage(id), true))?.provisionedBytes ?? 0;
    },
    async acquireRecomposeSlot(ds, holder, slots, leaseMs) {
      const now = Date.now();
      // Re-entrant: a redelivered job finds the slot it already holds.
      for (let slot = 0; slot < slots; slot++) {
        try {
          await doc.send(
            new PutCommand({
              TableName: table,
              Item: {
                ...keys.recomposeSlot(ds, slot),
                entity: "recomposeSlot",
                holder,
                expiresAt: now + leaseMs,
              },
              ConditionExpression: "attribute_not_exists(pk) OR holder = :holder OR expiresAt < :now",
              ExpressionAttributeValues: { ":holder": holder, ":now": now },
            }),
          );
          return true;
        } catch (err) {
          if (!isConditionFailure(err)) throw err;
        }
      }
      return false;
    },
    async releaseRecomposeSlot(ds, holder, slots) {
      for (let slot = 0; slot < slots; slot++) {
        try {
          await doc.send(
            new DeleteCommand({
              TableName: table,
              Key: keys.recomposeSlot(ds, slot),
              ConditionExpression: "holder = :holder",
              ExpressionAttributeValues: { ":holder": holder },
            }),
          );
        } catch (err) {
          if (!isConditionFailure(err)) throw err;
        }
      }
    },
  };

  const replicas: ReplicaRepository = {
    async record(r, created) {
      await doc.send(
        new UpdateCommand({
          TableName: table,
          Key: keys.replica(r.tenantId, r.imageId, r.version, r.datastoreId),
          UpdateExpression:
            "SET entity = :entity, tenantId = :t, imageId = :i, version = :n, datastoreId = :ds, sha256 = :sha, createdAt = if_not_exists(createdAt, :at) ADD creations :c",
          ExpressionAttributeValues: {
            ":entity": "replica",
            ":t": r.tenantId,
            ":i": r.imageId,
            ":n": r.version,
            ":ds": r.datastoreId,
            ":sha": r.sha256,
            ":at": r.createdAt,
            ":c": created ? 1 : 0,
          },
        }),
      );
    },
    list: (t, i, n) => byPrefix<Replica>(keys.tenant(t).pk, keys.replicaPrefix(i, n)),
    async remove(r) {
      await doc.send(
        new DeleteCommand({
          TableName: table,
          Key: keys.replica(r.tenantId, r.imageId, r.version, r.datastoreId),
        }),
      );
    },
  };

  return { tenants, images, pools, desktops, sessions, datastores, replicas };
}
