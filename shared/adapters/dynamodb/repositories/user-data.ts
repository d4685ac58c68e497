import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { UserDataChange } from "../../../domain/dr-model.ts";
import type { UserDataRepository } from "../../../ports/index.ts";
import { entities } from "../entities.ts";
import { isConditionFailure, itemAtFailure, transact } from "../errors.ts";
import { keys, watch } from "../keys.ts";
import type { Table } from "../table.ts";
import { tableSchema, watchIndex } from "../table-schema.ts";

/** User data records and their changes (one item per committed version). */
export function userDataRepository(t: Table): UserDataRepository {
  const get: UserDataRepository["get"] = (r) => t.get(entities.userData, keys.userData(r.tenantId, r.userId));
  return {
    get,
    // The watch index holds exactly the records behind (a query per shard, never a scan); it is
    // eventually consistent, so what it names is checked again.
    listBehind: async (changedBefore) =>
      (await t.watching(entities.userData, "BEHIND", changedBefore)).filter(
        (u) => u.version > u.replicatedVersion,
      ),
    list: (tenantId) => t.byPrefix(entities.userData, keys.tenant(tenantId).pk, keys.userDataPrefix),
    async createIfAbsent(record) {
      const put = await t.tryPut(entities.userData.toItem(record));
      if (put.written) return record;
      // The record that was there first comes back with the refusal.
      const existing = put.existing ? entities.userData.fromItem(put.existing) : await get(record);
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
        ":epoch": change.epoch ?? 0,
      };
      const set = ["version = :to", "sha256 = :sha", "lastChangeAt = :at", "epoch = :epoch"];
      const remove: string[] = [];
      let condition = "version = :from";
      if (sessionId) {
        // Committed here: behind the peer until it verifies this version (the watch index names it).
        set.push("lastCommittedSessionId = :s", "#wpk = :wpk", "#wsk = :at");
        remove.push("attachedSessionId", "attachedVersion", "attachedAt");
        condition += " AND attachedSessionId = :s";
        values[":s"] = sessionId;
        values[":wpk"] = watch.partition("BEHIND", change.userId);
      } else {
        // Applied from the peer: the peer has it already, so it counts as replicated.
        set.push("replicatedVersion = :to", "replicatedAt = :at");
        remove.push("#wpk", "#wsk");
      }
      const update = `SET ${set.join(", ")} REMOVE ${remove.join(", ")}`;
      const result = await transact(t.doc, {
        record: {
          Update: {
            TableName: t.name,
            Key: keys.userData(change.tenantId, change.userId),
            UpdateExpression: update,
            ConditionExpression: condition,
            ExpressionAttributeNames: { "#wpk": watchIndex.pk, "#wsk": watchIndex.sk },
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
    async getWithChange(r, n) {
      const [record, change] = await t.getMany([
        keys.userData(r.tenantId, r.userId),
        keys.userDataChange(r.tenantId, r.userId, n),
      ]);
      return {
        record: record ? entities.userData.fromItem(record) : undefined,
        change: change ? entities.userDataChange.fromItem(change) : undefined,
      };
    },
    listChanges: (tenantId) =>
      t.byPrefix(entities.userDataChange, keys.userDataChangePartition(tenantId), keys.userDataChangePrefix),
    async markShipped(r, n, at, bytes) {
      // The first ship of a change adds its bytes to the user's total (which outlives the change
      // record once it expires); a ship again only refreshes the change's own figure.
      const first = await transact(t.doc, {
        change: {
          Update: {
            TableName: t.name,
            Key: keys.userDataChange(r.tenantId, r.userId, n),
            UpdateExpression: "SET shippedAt = :at, shippedBytes = :b",
            ConditionExpression: "attribute_exists(pk) AND attribute_not_exists(shippedBytes)",
            ExpressionAttributeValues: { ":at": at, ":b": bytes },
          },
        },
        user: {
          Update: {
            TableName: t.name,
            Key: keys.userData(r.tenantId, r.userId),
            UpdateExpression: "ADD shippedBytes :b",
            ConditionExpression: "attribute_exists(pk)",
            ExpressionAttributeValues: { ":b": bytes },
          },
        },
      });
      if (first.ok) return;
      await t.tryUpdate({
        Key: keys.userDataChange(r.tenantId, r.userId, n),
        UpdateExpression: "SET shippedAt = if_not_exists(shippedAt, :at), shippedBytes = :b",
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeValues: { ":at": at, ":b": bytes },
      });
    },
    async expireChanges(r, through, expiresAt) {
      const open = await t.queryItems({
        KeyConditionExpression: "pk = :pk AND sk BETWEEN :from AND :to",
        // The user's own changes (a user id may hold '#'), not yet given an expiry.
        FilterExpression: "userId = :u AND attribute_not_exists(#ttl)",
        ExpressionAttributeNames: { "#ttl": tableSchema.ttlAttribute },
        ExpressionAttributeValues: {
          ":pk": keys.userDataChangePartition(r.tenantId),
          ":u": r.userId,
          ":from": keys.userDataChange(r.tenantId, r.userId, 1).sk,
          ":to": keys.userDataChange(r.tenantId, r.userId, through).sk,
        },
        ProjectionExpression: "pk, sk",
        ConsistentRead: true,
      });
      let marked = 0;
      for (const item of open) {
        const set = await t.tryUpdate({
          Key: { pk: item.pk, sk: item.sk },
          UpdateExpression: "SET #ttl = :x",
          ConditionExpression: "attribute_exists(pk) AND attribute_not_exists(#ttl)",
          ExpressionAttributeNames: { "#ttl": tableSchema.ttlAttribute },
          ExpressionAttributeValues: { ":x": expiresAt },
        });
        if (set) marked++;
      }
      return marked;
    },
    async markSuperseded(r, n, at) {
      await t.tryUpdate({
        Key: keys.userDataChange(r.tenantId, r.userId, n),
        UpdateExpression: "SET supersededAt = if_not_exists(supersededAt, :at)",
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeValues: { ":at": at },
      });
    },
    async markReplicated(r, n, sha256, at) {
      // The change first, and only the very change the peer verified (one expired here is gone:
      // nothing to compare); what it was before tells a first acknowledgement from a repeat.
      let before: UserDataChange | undefined;
      try {
        const out = await t.doc.send(
          new UpdateCommand({
            TableName: t.name,
            Key: keys.userDataChange(r.tenantId, r.userId, n),
            UpdateExpression: "SET replicatedAt = if_not_exists(replicatedAt, :at)",
            ConditionExpression: "attribute_exists(pk) AND sha256 = :sha",
            ExpressionAttributeValues: { ":at": at, ":sha": sha256 },
            ReturnValues: "ALL_OLD",
            ReturnValuesOnConditionCheckFailure: "ALL_OLD",
          }),
        );
        before = out.Attributes ? entities.userDataChange.fromItem(out.Attributes) : undefined;
      } catch (err) {
        if (!isConditionFailure(err)) throw err;
        if (itemAtFailure(err)) return { conflict: true };
      }
      // Monotonic: an older acknowledgement changes nothing. The peer verified the latest version
      // (the usual case): caught up, out of the reconciler's sight in the same write. Otherwise a
      // commit since keeps it in.
      const acknowledge = (caughtUp: boolean) =>
        t.tryUpdateReturning(entities.userData, {
          Key: keys.userData(r.tenantId, r.userId),
          UpdateExpression: `SET replicatedVersion = :n, replicatedAt = :at${caughtUp ? " REMOVE #wpk, #wsk" : ""}`,
          ConditionExpression: `attribute_exists(pk) AND replicatedVersion < :n${caughtUp ? " AND version = :n" : ""}`,
          ...(caughtUp ? { ExpressionAttributeNames: { "#wpk": watchIndex.pk, "#wsk": watchIndex.sk } } : {}),
          ExpressionAttributeValues: { ":n": n, ":at": at },
        });
      const record = (await acknowledge(true)) ?? (await acknowledge(false));
      return { conflict: false, before, record };
    },
  };
}

/**
 * A user's data the peer has verified through its latest version leaves the watch index. On its
 * own (an update cannot remove conditionally): a change committed meanwhile fails the condition,
 * and keeps it there.
 */
export async function leaveWatchIfCaughtUp(t: Table, r: { tenantId: string; userId: string }) {
  await t.tryUpdate({
    Key: keys.userData(r.tenantId, r.userId),
    UpdateExpression: "REMOVE #wpk, #wsk",
    ConditionExpression: "attribute_exists(#wpk) AND replicatedVersion >= version",
    ExpressionAttributeNames: { "#wpk": watchIndex.pk, "#wsk": watchIndex.sk },
  });
}
