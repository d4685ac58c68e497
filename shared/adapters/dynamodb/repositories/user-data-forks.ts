import type { UserDataForkRepository } from "../../../ports/index.ts";
import { entities } from "../entities.ts";
import { transact } from "../errors.ts";
import { keys } from "../keys.ts";
import type { Table } from "../table.ts";
import { leaveWatchIfCaughtUp } from "./user-data.ts";

/** Forks of users' data: each is written in the same transaction as the history change that makes it. */
export function userDataForkRepository(t: Table): UserDataForkRepository {
  const forkItem = (f: Parameters<UserDataForkRepository["forkCommit"]>[1]) => ({
    Put: {
      TableName: t.name,
      Item: entities.userDataFork.toItem(f),
      ConditionExpression: "attribute_not_exists(pk)",
    },
  });
  return {
    get: (tenantId, forkId) => t.get(entities.userDataFork, keys.userDataFork(tenantId, forkId)),
    list: (tenantId) => t.byPrefix(entities.userDataFork, keys.tenant(tenantId).pk, keys.userDataForkPrefix),
    async forkHistory(ref, from, base, fork) {
      const through = Array.from({ length: from - base.version }, (_, i) => base.version + 1 + i);
      const result = await transact(t.doc, {
        record: {
          Update: {
            TableName: t.name,
            Key: keys.userData(ref.tenantId, ref.userId),
            UpdateExpression: "SET version = :base, sha256 = :sha, epoch = :epoch",
            // Nobody writes the disk meanwhile: a writer's overlay is built on version `from`.
            ConditionExpression: "version = :from AND attribute_not_exists(attachedSessionId)",
            ExpressionAttributeValues: {
              ":base": base.version,
              ":sha": base.sha256,
              ":epoch": base.epoch,
              ":from": from,
            },
          },
        },
        fork: forkItem(fork),
        ...Object.fromEntries(
          through.map((n) => [
            `change${n}`,
            { Delete: { TableName: t.name, Key: keys.userDataChange(ref.tenantId, ref.userId, n) } },
          ]),
        ),
      });
      // The history went back: the peer may have verified the version it now ends at.
      if (result.ok) await leaveWatchIfCaughtUp(t, ref);
      return result.ok;
    },
    async forkCommit(ref, fork) {
      const result = await transact(t.doc, {
        record: {
          Update: {
            TableName: t.name,
            Key: keys.userData(ref.tenantId, ref.userId),
            UpdateExpression: "REMOVE attachedSessionId, attachedVersion, attachedAt",
            ConditionExpression: "attachedSessionId = :s",
            ExpressionAttributeValues: { ":s": fork.sessionId },
          },
        },
        fork: forkItem(fork),
      });
      return result.ok;
    },
    async setResolving(tenantId, forkId, keep) {
      return t.tryUpdate({
        Key: keys.userDataFork(tenantId, forkId),
        UpdateExpression: "SET #state = :resolving, keep = :k",
        ConditionExpression: "#state = :open OR (#state = :resolving AND keep = :k)",
        ExpressionAttributeNames: { "#state": "state" },
        ExpressionAttributeValues: { ":open": "OPEN", ":resolving": "RESOLVING", ":k": keep },
      });
    },
    async reopen(tenantId, forkId) {
      await t.tryUpdate({
        Key: keys.userDataFork(tenantId, forkId),
        UpdateExpression: "SET #state = :open REMOVE keep",
        ConditionExpression: "#state = :resolving",
        ExpressionAttributeNames: { "#state": "state" },
        ExpressionAttributeValues: { ":open": "OPEN", ":resolving": "RESOLVING" },
      });
    },
    async setResolved(tenantId, forkId, at, resolvedVersion) {
      await t.tryUpdate({
        Key: keys.userDataFork(tenantId, forkId),
        UpdateExpression: `SET #state = :resolved, resolvedAt = :at${resolvedVersion === undefined ? "" : ", resolvedVersion = :v"}`,
        ConditionExpression: "#state = :resolving",
        ExpressionAttributeNames: { "#state": "state" },
        ExpressionAttributeValues: {
          ":resolved": "RESOLVED",
          ":resolving": "RESOLVING",
          ":at": at,
          ...(resolvedVersion === undefined ? {} : { ":v": resolvedVersion }),
        },
      });
    },
  };
}
