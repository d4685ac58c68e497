import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  type DynamoDBDocumentClient,
  PutCommand,
  TransactWriteCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import type { Drill, DrState } from "../../domain/dr.ts";
import type { Image, ImageVersion, Pool, Tenant } from "../../domain/model.ts";
import type { UserData, UserDataChange } from "../../domain/user-data.ts";
import type { DrRepository, UserDataRepository } from "../../ports.ts";
import { keys } from "./keys.ts";
import { tableReads } from "./table.ts";

const conditionFailed = (err: unknown) =>
  (err as Error).name === "ConditionalCheckFailedException" || err instanceof TransactionCanceledException;

/** User data records, their changes, DR state, drills and replicated configuration. */
export function drRepositories(doc: DynamoDBDocumentClient, table: string) {
  const reads = tableReads(doc, table);
  const get = <T>(key: { pk: string; sk: string }) => reads.get<T>(key, true);
  const byPrefix = reads.byPrefix;
  /** An update that is allowed to find its condition false. */
  const tryUpdate = async (input: ConstructorParameters<typeof UpdateCommand>[0]) => {
    try {
      await doc.send(new UpdateCommand(input));
      return true;
    } catch (err) {
      if (conditionFailed(err)) return false;
      throw err;
    }
  };

  const userData: UserDataRepository = {
    get: (r) => get<UserData>(keys.userData(r.tenantId, r.userId)),
    listBehind: (changedBefore) =>
      reads.scanAll<UserData>("entity = :e AND version > replicatedVersion AND lastChangeAt < :cutoff", {
        ":e": "userData",
        ":cutoff": changedBefore,
      }),
    list: (t) =>
      byPrefix<UserData>(keys.tenant(t).pk, keys.userDataPrefix).then((all) =>
        // USERDATA#<u> only: the prefix also matches nothing else today, but be explicit.
        all.filter((u) => u.userId !== undefined),
      ),
    async createIfAbsent(record) {
      try {
        await doc.send(
          new PutCommand({
            TableName: table,
            Item: { ...keys.userData(record.tenantId, record.userId), entity: "userData", ...record },
            ConditionExpression: "attribute_not_exists(pk)",
          }),
        );
        return record;
      } catch (err) {
        if (!conditionFailed(err)) throw err;
        const existing = await userData.get(record);
        if (!existing) throw new Error(`user data of ${record.userId} vanished`);
        return existing;
      }
    },
    attach: (r, sessionId, version) =>
      tryUpdate({
        TableName: table,
        Key: keys.userData(r.tenantId, r.userId),
        UpdateExpression: "SET attachedSessionId = :s, attachedVersion = :v",
        ConditionExpression:
          "version = :v AND (attribute_not_exists(attachedSessionId) OR attachedSessionId = :s)",
        ExpressionAttributeValues: { ":s": sessionId, ":v": version },
      }),
    async recordChange(change, sessionId) {
      const ref = keys.userData(change.tenantId, change.userId);
      const values: Record<string, unknown> = {
        ":from": change.version - 1,
        ":to": change.version,
        ":sha": change.sha256,
        ":at": change.committedAt,
      };
      let update = "SET version = :to, sha256 = :sha, lastChangeAt = :at";
      let condition = "version = :from";
      if (sessionId) {
        update += ", lastCommittedSessionId = :s REMOVE attachedSessionId, attachedVersion";
        condition += " AND attachedSessionId = :s";
        values[":s"] = sessionId;
      } else {
        // Applied from the peer: the peer has it already, so it counts as replicated.
        update += ", replicatedVersion = :to, replicatedAt = :at";
      }
      try {
        await doc.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Update: {
                  TableName: table,
                  Key: ref,
                  UpdateExpression: update,
                  ConditionExpression: condition,
                  ExpressionAttributeValues: values,
                },
              },
              {
                Put: {
                  TableName: table,
                  Item: {
                    ...keys.userDataChange(change.tenantId, change.userId, change.version),
                    entity: "userDataChange",
                    ...change,
                  },
                },
              },
            ],
          }),
        );
        return true;
      } catch (err) {
        if (conditionFailed(err)) return false;
        throw err;
      }
    },
    async detach(r, sessionId) {
      await tryUpdate({
        TableName: table,
        Key: keys.userData(r.tenantId, r.userId),
        UpdateExpression: "REMOVE attachedSessionId, attachedVersion",
        ConditionExpression: "attachedSessionId = :s",
        ExpressionAttributeValues: { ":s": sessionId },
      });
    },
    getChange: (r, n) => get<UserDataChange>(keys.userDataChange(r.tenantId, r.userId, n)),
    listChanges: (t) => byPrefix<UserDataChange>(keys.userDataChangePartition(t), keys.userDataChangePrefix),
    async markShipped(r, n, at, bytes) {
      await tryUpdate({
        TableName: table,
        Key: keys.userDataChange(r.tenantId, r.userId, n),
        UpdateExpression: "SET shippedAt = if_not_exists(shippedAt, :at), shippedBytes = :b",
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeValues: { ":at": at, ":b": bytes },
      });
    },
    async markReplicated(r, n, at) {
      await tryUpdate({
        TableName: table,
        Key: keys.userData(r.tenantId, r.userId),
        UpdateExpression: "SET replicatedVersion = :n, replicatedAt = :at",
        ConditionExpression: "attribute_exists(pk) AND replicatedVersion < :n",
        ExpressionAttributeValues: { ":n": n, ":at": at },
      });
      await tryUpdate({
        TableName: table,
        Key: keys.userDataChange(r.tenantId, r.userId, n),
        UpdateExpression: "SET replicatedAt = if_not_exists(replicatedAt, :at)",
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeValues: { ":at": at },
      });
    },
  };

  const put = async (key: { pk: string; sk: string }, entity: string, item: object) => {
    await doc.send(new PutCommand({ TableName: table, Item: { ...key, entity, ...item } }));
  };

  const dr: DrRepository = {
    getState: (t) => get<DrState>(keys.drState(t)),
    async updateState(t, patch) {
      const entries = Object.entries(patch).filter(([, v]) => v !== undefined);
      await doc.send(
        new UpdateCommand({
          TableName: table,
          Key: keys.drState(t),
          UpdateExpression: `SET entity = :e, tenantId = :t${entries.map(([k]) => `, #${k} = :${k}`).join("")}`,
          ...(entries.length
            ? { ExpressionAttributeNames: Object.fromEntries(entries.map(([k]) => [`#${k}`, k])) }
            : {}),
          ExpressionAttributeValues: {
            ":e": "drState",
            ":t": t,
            ...Object.fromEntries(entries.map(([k, v]) => [`:${k}`, v])),
          },
        }),
      );
    },
    async setKeyFailedOver(t, failedOver) {
      const owner = await dr.getTenantWithKey(t);
      if (!owner) throw new Error(`tenant ${t} has no key hash recorded here`);
      await doc.send(
        new UpdateCommand({
          TableName: table,
          Key: keys.apiKey(owner.apiKeyHash),
          UpdateExpression: "SET failedOver = :f",
          ExpressionAttributeValues: { ":f": failedOver },
        }),
      );
    },
    putDrill: (d) => put(keys.drill(d.tenantId, d.drillId), "drill", d),
    getDrill: (t, d) => get<Drill>(keys.drill(t, d)),
    async putTenant(tenant, apiKeyHash) {
      // The key item carries the tenant (authentication is one read), as in tenants.create.
      await put(keys.tenant(tenant.tenantId), "tenant", { ...tenant, apiKeyHash });
      await put(keys.apiKey(apiKeyHash), "apiKey", tenant);
    },
    async getTenantWithKey(t) {
      const item = await get<Tenant & { apiKeyHash?: string }>(keys.tenant(t));
      if (!item?.apiKeyHash) return undefined;
      const { apiKeyHash, ...tenant } = item;
      return { tenant, apiKeyHash };
    },
    putImage: (i: Image) => put(keys.image(i.tenantId, i.imageId), "image", i),
    putVersion: (v: ImageVersion) => put(keys.version(v.tenantId, v.imageId, v.version), "imageVersion", v),
    putPool: (p: Pool) => put(keys.pool(p.tenantId, p.poolId), "pool", p),
  };

  return { userData, dr };
}
