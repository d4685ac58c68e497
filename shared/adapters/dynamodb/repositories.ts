import { randomBytes } from "node:crypto";
import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  BatchWriteCommand,
  DeleteCommand,
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  ScanCommand,
  TransactWriteCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { assertTransition } from "../../domain/desktop-state.ts";
import { parseSessionId } from "../../domain/ids.ts";
import type { Desktop, Image, ImageVersion, Pool, Session, Tenant } from "../../domain/model.ts";
import type {
  AssignResult,
  DesktopRepository,
  EndSessionResult,
  ImageRepository,
  PoolRepository,
  SessionRepository,
  TenantRepository,
} from "../../ports.ts";
import { freeIndex, fromItem, keys } from "./keys.ts";
import { tableReads } from "./table.ts";

const spreadToken = () => randomBytes(8).toString("hex");

function cancellationCodes(err: unknown): string[] | undefined {
  if (!(err instanceof TransactionCanceledException)) return undefined;
  return (err.CancellationReasons ?? []).map((r) => r.Code ?? "None");
}

export function dynamoRepositories(doc: DynamoDBDocumentClient, table: string) {
  const { get, byPrefix } = tableReads(doc, table);

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
        if ((err as Error).name !== "ConditionalCheckFailedException") throw err;
      }
    },
  };

  const desktopItem = (d: Desktop) => ({
    ...keys.desktop(d.tenantId, d.poolId, d.desktopId),
    entity: "desktop",
    ...d,
    ...(d.state === "AVAILABLE"
      ? { gsi1pk: keys.freeDesktops(d.tenantId, d.poolId), gsi1sk: spreadToken() }
      : {}),
  });

  const pools: PoolRepository = {
    async create(pool: Pool, desktops: Desktop[]) {
      await doc.send(
        new PutCommand({
          TableName: table,
          Item: { ...keys.pool(pool.tenantId, pool.poolId), entity: "pool", ...pool },
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      );
      await batchPut(desktops.map(desktopItem));
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
      const token = spreadToken();
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
      for (const [k, v] of Object.entries(changes)) {
        sets.push(`${k} = :${k}`);
        values[`:${k}`] = v;
      }
      if (to === "AVAILABLE") {
        sets.push(`${freeIndex.pk} = :free`, `${freeIndex.sk} = :spread`);
        values[":free"] = keys.freeDesktops(d.tenantId, d.poolId);
        values[":spread"] = spreadToken();
        removes.push("sessionId", "userId", "sessionStartedAt", "#error");
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
            ExpressionAttributeNames: {
              "#state": "state",
              ...(to === "AVAILABLE" ? { "#error": "error" } : {}),
            },
            ExpressionAttributeValues: values,
          }),
        );
        return true;
      } catch (err) {
        if ((err as Error).name === "ConditionalCheckFailedException") return false;
        throw err;
      }
    },
    async remove(d) {
      await doc.send(
        new DeleteCommand({ TableName: table, Key: keys.desktop(d.tenantId, d.poolId, d.desktopId) }),
      );
    },
    // A scan, on purpose: the reconciler runs every few minutes off the request path.
    async listStuck(updatedBefore) {
      const found: Desktop[] = [];
      let start: Record<string, unknown> | undefined;
      do {
        const out = await doc.send(
          new ScanCommand({
            TableName: table,
            FilterExpression: "entity = :desktop AND #state IN (:p, :r, :d) AND updatedAt < :cutoff",
            ExpressionAttributeNames: { "#state": "state" },
            ExpressionAttributeValues: {
              ":desktop": "desktop",
              ":p": "PROVISIONING",
              ":r": "REFRESHING",
              ":d": "DELETING",
              ":cutoff": updatedBefore,
            },
            ExclusiveStartKey: start,
          }),
        );
        for (const item of out.Items ?? []) found.push(fromItem<Desktop>(item));
        start = out.LastEvaluatedKey;
      } while (start);
      return found;
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
  const sessions: SessionRepository = {
    async get(t, sid) {
      const ref = parseSessionId(sid);
      if (!ref) return undefined;
      const desktop = await get<Desktop>(keys.desktop(t, ref.poolId, ref.desktopId), true);
      if (desktop?.sessionId === sid) return activeSessionOf(desktop);
      return get<Session>(keys.session(t, sid), true);
    },
    async findActive(t, p, u) {
      return get<Session>(keys.userLock(t, p, u), true);
    },
    async assign(desktop: Desktop, session: Session): Promise<AssignResult> {
      const { tenantId: t, poolId: p } = session;
      try {
        await doc.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Update: {
                  TableName: table,
                  Key: keys.desktop(t, p, desktop.desktopId),
                  UpdateExpression: `SET #state = :assigned, sessionId = :sid, userId = :uid, sessionStartedAt = :now, updatedAt = :now REMOVE ${freeIndex.pk}, ${freeIndex.sk}`,
                  ConditionExpression: "#state = :available",
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
            ],
          }),
        );
        return { outcome: "assigned", session };
      } catch (err) {
        const codes = cancellationCodes(err);
        if (!codes) throw err;
        if (codes[1] === "ConditionalCheckFailed") return { outcome: "user-has-session" };
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

  return { tenants, images, pools, desktops, sessions };
}
