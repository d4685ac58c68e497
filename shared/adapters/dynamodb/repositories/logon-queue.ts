import { QueryCommand } from "@aws-sdk/lib-dynamodb";
import type { LogonTicket } from "../../../domain/model.ts";
import type { LogonQueueRepository } from "../../../ports/index.ts";
import { entities } from "../entities.ts";
import { conditionFailed, type TransactItem, type TransactResult, transact } from "../errors.ts";
import { keys } from "../keys.ts";
import type { Table } from "../table.ts";
import { tableSchema } from "../table-schema.ts";

/** A settled ticket stays readable this long. */
const settledTtlSeconds = 24 * 3600;

/**
 * Every ticket's change moves the pool's one count, so in a storm transactions collide on it: one
 * that only collided (no condition failed) is run again after a short random pause.
 */
async function retryConflicts<N extends string>(run: () => Promise<TransactResult<N>>) {
  for (let attempt = 1; ; attempt++) {
    const result = await run();
    if (result.ok || attempt === 8) return result;
    const codes = Object.values<string>(result.reasons);
    if (!codes.includes("TransactionConflict") || codes.includes("ConditionalCheckFailed")) return result;
    await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
  }
}

/**
 * The logon queue of a pool: waiting tickets under TICKET# (in id order, which is arrival order),
 * settled ones under SETTLED#, the waiting count on the QUEUE item, each user's latest ticket.
 * Every change of a ticket's state moves the count in the same transaction.
 */
export function logonQueueRepository(t: Table): LogonQueueRepository {
  /**
   * The line's count moves by `delta`. A ticket `joining` gets in only while fewer than its `limit`
   * wait, and only if its id is past `servingThrough`: the server fences the page it serves, so a
   * ticket whose write lands late never sorts before tickets already served.
   */
  const queueUpdate = (
    tenantId: string,
    poolId: string,
    delta: number,
    joining?: { limit: number; ticketId: string },
  ) => ({
    Update: {
      TableName: t.name,
      Key: keys.logonQueue(tenantId, poolId),
      UpdateExpression: "SET entity = :e, tenantId = :t, poolId = :p ADD waiting :d",
      ...(joining
        ? {
            ConditionExpression:
              "(attribute_not_exists(waiting) OR waiting < :limit) AND (attribute_not_exists(servingThrough) OR servingThrough < :id)",
          }
        : {}),
      ExpressionAttributeValues: {
        ":e": entities.logonQueue.name,
        ":t": tenantId,
        ":p": poolId,
        ":d": delta,
        ...(joining ? { ":limit": joining.limit, ":id": joining.ticketId } : {}),
      },
    },
  });
  const waitingGone = (ticket: LogonTicket) => ({
    Delete: {
      TableName: t.name,
      Key: keys.ticket(ticket.tenantId, ticket.poolId, ticket.ticketId),
      ConditionExpression: "attribute_exists(pk)",
    },
  });
  const settledPut = (ticket: LogonTicket, state: LogonTicket["state"], at: string, sessionId?: string) => ({
    Put: {
      TableName: t.name,
      Item: entities.settledTicket.toItem(
        {
          ...ticket,
          state,
          ...(state === "SERVED" ? { servedAt: at } : {}),
          ...(sessionId ? { sessionId } : {}),
        },
        { [tableSchema.ttlAttribute]: Math.floor(Date.parse(at) / 1000) + settledTtlSeconds },
      ),
    },
  });
  const settle: LogonQueueRepository["settle"] = async (ticket, state, at, sessionId) => {
    const result = await retryConflicts(() =>
      transact(
        t.doc,
        {
          waiting: waitingGone(ticket),
          settled: settledPut(ticket, state, at, sessionId),
          queue: queueUpdate(ticket.tenantId, ticket.poolId, -1),
        },
        { conflictIsRetry: false },
      ),
    );
    return result.ok;
  };
  const get: LogonQueueRepository["get"] = async (tenantId, poolId, ticketId) =>
    (await t.get(entities.ticket, keys.ticket(tenantId, poolId, ticketId))) ??
    (await t.get(entities.settledTicket, keys.settledTicket(tenantId, poolId, ticketId)));
  return {
    get,
    async waiting(tenantId, poolId) {
      const q = await t.get(entities.logonQueue, keys.logonQueue(tenantId, poolId));
      return q?.waiting ?? 0;
    },
    async userTicket(tenantId, poolId, userId) {
      const pointer = await t.get(entities.userTicket, keys.userTicket(tenantId, poolId, userId));
      return pointer ? get(tenantId, poolId, pointer.ticketId) : undefined;
    },
    async enqueue(ticket, limit, replaces, opts = {}) {
      const { tenantId, poolId, userId, ticketId, validUntil } = ticket;
      const result = await retryConflicts(() =>
        transact(
          t.doc,
          {
            queue: queueUpdate(tenantId, poolId, 1, { limit, ticketId }),
            ticket: {
              Put: {
                TableName: t.name,
                Item: entities.ticket.toItem(ticket),
                ConditionExpression: "attribute_not_exists(pk)",
              },
            },
            // Unread, the user's pointer is replaced only when it names a ticket whose time ran
            // out before this one was made (a pointer without its time never is).
            user: {
              Put: {
                TableName: t.name,
                Item: entities.userTicket.toItem({ tenantId, poolId, userId, ticketId, validUntil }),
                ConditionExpression: replaces
                  ? "ticketId = :old"
                  : "attribute_not_exists(pk) OR validUntil < :now",
                ExpressionAttributeValues: replaces ? { ":old": replaces } : { ":now": ticket.createdAt },
              },
            },
            // The user has no session in the pool (the lock a logon takes first).
            session: opts.unlessOn
              ? {
                  ConditionCheck: {
                    TableName: t.name,
                    Key: keys.userLock(tenantId, poolId, userId),
                    ConditionExpression: "attribute_not_exists(pk)",
                  },
                }
              : undefined,
          },
          { conflictIsRetry: false },
        ),
      );
      if (result.ok) return "queued";
      // A user on reconnects, and one who holds a waiting ticket gets it, even when the line is full.
      if (conditionFailed(result.reasons, "session")) return "on";
      if (conditionFailed(result.reasons, "user")) return "raced";
      if (conditionFailed(result.reasons, "queue")) {
        const q = await t.get(entities.logonQueue, keys.logonQueue(tenantId, poolId));
        return q?.servingThrough !== undefined && q.servingThrough >= ticketId ? "behind" : "full";
      }
      return "raced";
    },
    async fenceServing(tenantId, poolId, ticketId) {
      await t.tryUpdate({
        Key: keys.logonQueue(tenantId, poolId),
        UpdateExpression: "SET servingThrough = :id",
        ConditionExpression: "attribute_not_exists(servingThrough) OR servingThrough < :id",
        ExpressionAttributeValues: { ":id": ticketId },
      });
    },
    async oldestWaiting(tenantId, poolId, limit) {
      const out = await t.doc.send(
        new QueryCommand({
          TableName: t.name,
          KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
          ExpressionAttributeValues: {
            ":pk": keys.logonQueue(tenantId, poolId).pk,
            ":prefix": keys.ticketPrefix,
          },
          ConsistentRead: true,
          Limit: limit,
        }),
      );
      return (out.Items ?? []).map((i) => entities.ticket.fromItem(i));
    },
    // Counted by the table: in a storm, every queued logon asks, with hundreds waiting before it.
    waitingBefore: (tenantId, poolId, ticketId) =>
      t.count({
        KeyConditionExpression: "pk = :pk AND sk BETWEEN :from AND :to",
        FilterExpression: "ticketId <> :id",
        ExpressionAttributeValues: {
          ":pk": keys.logonQueue(tenantId, poolId).pk,
          ":from": keys.ticketPrefix,
          ":to": keys.ticket(tenantId, poolId, ticketId).sk,
          ":id": ticketId,
        },
        ConsistentRead: true,
      }),
    settle,
    async settleServed(served) {
      // One transaction for the lot (two items each and the count), else one by one.
      const first = served[0];
      if (!first) return;
      if (served.length <= 45) {
        const items: Record<string, TransactItem> = {
          queue: queueUpdate(first.ticket.tenantId, first.ticket.poolId, -served.length),
        };
        served.forEach((s, i) => {
          items[`waiting${i}`] = waitingGone(s.ticket);
          items[`settled${i}`] = settledPut(s.ticket, "SERVED", s.at, s.sessionId);
        });
        if ((await retryConflicts(() => transact(t.doc, items, { conflictIsRetry: false }))).ok) return;
      }
      for (const s of served) await settle(s.ticket, "SERVED", s.at, s.sessionId);
    },
    async lease(tenantId, poolId, name, holder, ms) {
      const now = Date.now();
      const taken = await t.tryPut(
        entities.poolLease.toItem({ tenantId, poolId, name, holder, leaseExpiresAtMs: now + ms }),
        {
          expression: "attribute_not_exists(pk) OR holder = :h OR leaseExpiresAtMs < :now",
          values: { ":h": holder, ":now": now },
        },
      );
      const until = taken.written ? now + ms : Number(taken.existing?.leaseExpiresAtMs ?? 0);
      return { taken: taken.written, until };
    },
    async release(tenantId, poolId, name, holder) {
      await t.remove(keys.poolLease(tenantId, poolId, name), {
        expression: "holder = :h",
        values: { ":h": holder },
      });
    },
  };
}
