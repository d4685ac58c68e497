import type { UserDataRepository } from "../../../ports/index.ts";
import { entities } from "../entities.ts";
import { transact } from "../errors.ts";
import { keys } from "../keys.ts";
import type { Table } from "../table.ts";

/** User data records and their changes (one item per committed version). */
export function userDataRepository(t: Table): UserDataRepository {
  const get: UserDataRepository["get"] = (r) => t.get(entities.userData, keys.userData(r.tenantId, r.userId));
  return {
    get,
    listBehind: (changedBefore) =>
      t.scanAll(entities.userData, "version > replicatedVersion AND lastChangeAt < :cutoff", {
        ":cutoff": changedBefore,
      }),
    list: (tenantId) => t.byPrefix(entities.userData, keys.tenant(tenantId).pk, keys.userDataPrefix),
    async createIfAbsent(record) {
      if ((await t.tryPut(entities.userData.toItem(record))).written) return record;
      const existing = await get(record);
      if (!existing) throw new Error(`user data of ${record.userId} vanished`);
      return existing;
    },
    attach: (r, sessionId, version, at) =>
      t.tryUpdate({
        Key: keys.userData(r.tenantId, r.userId),
        UpdateExpression:
          "SET attachedSessionId = :s, attachedVersion = :v, attachedAt = if_not_exists(attachedAt, :at)",
        ConditionExpression:
          "version = :v AND (attribute_not_exists(attachedSessionId) OR attachedSessionId = :s)",
        ExpressionAttributeValues: { ":s": sessionId, ":v": version, ":at": at },
      }),
    async recordChange(change, sessionId) {
      const values: Record<string, unknown> = {
        ":from": change.version - 1,
        ":to": change.version,
        ":sha": change.sha256,
        ":at": change.committedAt,
      };
      let update = "SET version = :to, sha256 = :sha, lastChangeAt = :at";
      let condition = "version = :from";
      if (sessionId) {
        update += ", lastCommittedSessionId = :s REMOVE attachedSessionId, attachedVersion, attachedAt";
        condition += " AND attachedSessionId = :s";
        values[":s"] = sessionId;
      } else {
        // Applied from the peer: the peer has it already, so it counts as replicated.
        update += ", replicatedVersion = :to, replicatedAt = :at";
      }
      const result = await transact(t.doc, {
        record: {
          Update: {
            TableName: t.name,
            Key: keys.userData(change.tenantId, change.userId),
            UpdateExpression: update,
            ConditionExpression: condition,
            ExpressionAttributeValues: values,
          },
        },
        change: { Put: { TableName: t.name, Item: entities.userDataChange.toItem(change) } },
      });
      return result.ok;
    },
    async markPlugged(r, sessionId, desktopId) {
      await t.tryUpdate({
        Key: keys.userData(r.tenantId, r.userId),
        UpdateExpression: "SET pluggedInto = :d",
        // Only the writer's disk must be let go before its commit; a read-only one is thrown away.
        ConditionExpression: "attachedSessionId = :s",
        ExpressionAttributeValues: { ":d": desktopId, ":s": sessionId },
      });
    },
    async markUnplugged(r, desktopId) {
      await t.tryUpdate({
        Key: keys.userData(r.tenantId, r.userId),
        UpdateExpression: "REMOVE pluggedInto",
        ConditionExpression: "pluggedInto = :d",
        ExpressionAttributeValues: { ":d": desktopId },
      });
    },
    async detach(r, sessionId) {
      await t.tryUpdate({
        Key: keys.userData(r.tenantId, r.userId),
        UpdateExpression: "REMOVE attachedSessionId, attachedVersion, attachedAt",
        ConditionExpression: "attachedSessionId = :s",
        ExpressionAttributeValues: { ":s": sessionId },
      });
    },
    getChange: (r, n) => t.get(entities.userDataChange, keys.userDataChange(r.tenantId, r.userId, n)),
    listChanges: (tenantId) =>
      t.byPrefix(entities.userDataChange, keys.userDataChangePartition(tenantId), keys.userDataChangePrefix),
    async markShipped(r, n, at, bytes) {
      await t.tryUpdate({
        Key: keys.userDataChange(r.tenantId, r.userId, n),
        UpdateExpression: "SET shippedAt = if_not_exists(shippedAt, :at), shippedBytes = :b",
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeValues: { ":at": at, ":b": bytes },
      });
    },
    async markReplicated(r, n, at) {
      // Monotonic: an older acknowledgement changes nothing.
      await t.tryUpdate({
        Key: keys.userData(r.tenantId, r.userId),
        UpdateExpression: "SET replicatedVersion = :n, replicatedAt = :at",
        ConditionExpression: "attribute_exists(pk) AND replicatedVersion < :n",
        ExpressionAttributeValues: { ":n": n, ":at": at },
      });
      await t.tryUpdate({
        Key: keys.userDataChange(r.tenantId, r.userId, n),
        UpdateExpression: "SET replicatedAt = if_not_exists(replicatedAt, :at)",
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeValues: { ":at": at },
      });
    },
  };
}
