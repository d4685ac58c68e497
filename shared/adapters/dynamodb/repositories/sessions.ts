import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { RetryLater } from "../../../domain/errors.ts";
import { parseSessionId } from "../../../domain/ids.ts";
import type { Desktop, Session } from "../../../domain/model.ts";
import type { AssignResult, EndSessionResult, SessionRepository } from "../../../ports/index.ts";
import { entities } from "../entities.ts";
import { conditionFailed, isConditionFailure, itemAtFailure, transact } from "../errors.ts";
import { keys, watch } from "../keys.ts";
import type { Table } from "../table.ts";
import { freeIndex, watchIndex } from "../table-schema.ts";

/**
 * A floating logon writes the user's lock, then claims the desktop: two single-item writes, not a
 * transaction (on DynamoDB Local a transaction costs about two updates). A lock whose desktop never
 * took its session (a logon that died between the two writes) is stale after this long and is
 * released by the next logon of that user. The two writes follow each other within one running
 * invocation (SDK retries take seconds), so a live logon is never this slow between them.
 */
const defaultLockStaleAfterMs = 60_000;

/** What the desktop records of its session's activity: it goes when the session does. */
export const sessionActivityAttributes = [
  "disconnectedAt",
  "idleSince",
  "connectionReportedAt",
  "idleReportedAt",
  "timeoutWarning",
] as const;

const activeSessionOf = (d: Desktop): Session | undefined =>
  d.state === "ASSIGNED" && d.sessionId && d.userId
    ? {
        tenantId: d.tenantId,
        sessionId: d.sessionId,
        poolId: d.poolId,
        desktopId: d.desktopId,
        userId: d.userId,
        state: "ACTIVE",
        datastoreId: d.datastoreId,
        startedAt: d.sessionStartedAt ?? d.updatedAt,
        ...(d.disconnectedAt ? { disconnectedAt: d.disconnectedAt } : {}),
        ...(d.idleSince ? { idleSince: d.idleSince } : {}),
        ...(d.timeoutWarning ? { timeoutWarning: d.timeoutWarning } : {}),
      }
    : undefined;

/** The claim of a free desktop for a session: AVAILABLE -> ASSIGNED, out of the free index. */
const claimUpdate = (table: string, session: Session, dedicate: boolean) => ({
  TableName: table,
  Key: keys.desktop(session.tenantId, session.poolId, session.desktopId),
  UpdateExpression: `SET #state = :assigned, sessionId = :sid, userId = :uid, sessionStartedAt = :now, updatedAt = :now, ${watchIndex.pk} = :wpk, ${watchIndex.sk} = :now${dedicate ? ", assignedUserId = :uid" : ""} REMOVE ${[freeIndex.pk, freeIndex.sk, ...sessionActivityAttributes].join(", ")}`,
  ConditionExpression: dedicate
    ? "#state = :available AND attribute_not_exists(assignedUserId)"
    : "#state = :available",
  ExpressionAttributeNames: { "#state": "state" },
  ExpressionAttributeValues: {
    ":assigned": "ASSIGNED",
    ":available": "AVAILABLE",
    ":sid": session.sessionId,
    ":uid": session.userId,
    ":now": session.startedAt,
    ":wpk": watch.partition("ASSIGNED", session.desktopId),
  },
});

const claimed = (item: Record<string, unknown> | undefined) =>
  item ? { desktop: entities.desktop.fromItem(item) } : {};

/*
 * A session lives on its desktop while ACTIVE (the id names the desktop) and in the user's
 * per-pool lock; when it ends, the same transaction writes its ENDED record. So there is never
 * a moment when a session can be found in neither place.
 */
export function sessionRepository(t: Table, opts: { lockStaleAfterMs?: number } = {}): SessionRepository {
  const lockStaleAfterMs = opts.lockStaleAfterMs ?? defaultLockStaleAfterMs;
  const getLock = (tenantId: string, poolId: string, userId: string) =>
    t.get(entities.userLock, keys.userLock(tenantId, poolId, userId));
  const getDesktop = (tenantId: string, poolId: string, desktopId: string) =>
    t.get(entities.desktop, keys.desktop(tenantId, poolId, desktopId));
  const releaseLock = (s: Pick<Session, "tenantId" | "poolId" | "userId" | "sessionId">) =>
    t.remove(keys.userLock(s.tenantId, s.poolId, s.userId), {
      expression: "sessionId = :sid",
      values: { ":sid": s.sessionId },
    });

  /**
   * Lock, then claim. Invariant 1 holds because a desktop only ever holds the session named by
   * the user's lock: a second logon of the same user fails the lock's condition, and a lost race
   * for the desktop gives the lock back. Either write may succeed with its answer lost; the SDK's
   * retry then meets its own success (the item names this session) and counts it as done.
   */
  const claimFloating = async (session: Session): Promise<AssignResult> => {
    const lock = await t.tryPut(entities.userLock.toItem(session));
    if (!lock.written && lock.existing?.sessionId !== session.sessionId)
      return { outcome: "user-has-session" };
    // The desktop as claimed comes back with the write: what the logon tells the user (its
    // console) is what the desktop held when it took the session, not what an index showed.
    try {
      const out = await t.doc.send(
        new UpdateCommand({
          ...claimUpdate(t.name, session, false),
          ReturnValues: "ALL_NEW",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return { outcome: "assigned", session, ...claimed(out.Attributes) };
    } catch (err) {
      const held = itemAtFailure(err);
      if (held?.sessionId === session.sessionId) return { outcome: "assigned", session, ...claimed(held) };
      if (isConditionFailure(err)) {
        await releaseLock(session);
        return { outcome: "desktop-taken" };
      }
      // Not known whether the claim took: the desktop says. Never free a lock its desktop holds.
      const desktop = await getDesktop(session.tenantId, session.poolId, session.desktopId);
      if (desktop?.sessionId === session.sessionId) return { outcome: "assigned", session, desktop };
      await releaseLock(session);
      throw err;
    }
  };

  /**
   * A dedicated pool's first logon of a user, in one transaction: the desktop must be nobody's yet,
   * and the user must own no other one.
   */
  const claimDedicating = async (session: Session): Promise<AssignResult> => {
    const result = await transact(
      t.doc,
      {
        desktop: { Update: claimUpdate(t.name, session, true) },
        lock: {
          Put: {
            TableName: t.name,
            Item: entities.userLock.toItem(session),
            ConditionExpression: "attribute_not_exists(pk)",
          },
        },
        owner: {
          Put: {
            TableName: t.name,
            Item: entities.owner.toItem({
              tenantId: session.tenantId,
              poolId: session.poolId,
              userId: session.userId,
              desktopId: session.desktopId,
            }),
            ConditionExpression: "attribute_not_exists(pk)",
          },
        },
      },
      { conflictIsRetry: false },
    );
    if (result.ok) return { outcome: "assigned", session };
    if (conditionFailed(result.reasons, "lock", "owner")) return { outcome: "user-has-session" };
    // The desktop was taken, or another transaction held one of the items: try another desktop.
    return { outcome: "desktop-taken" };
  };

  return {
    async get(tenantId, sessionId) {
      const ref = parseSessionId(sessionId);
      if (!ref) return undefined;
      const desktop = await getDesktop(tenantId, ref.poolId, ref.desktopId);
      if (desktop?.sessionId === sessionId) return activeSessionOf(desktop);
      return t.get(entities.endedSession, keys.session(tenantId, sessionId));
    },
    async findActive(tenantId, poolId, userId) {
      const lock = await getLock(tenantId, poolId, userId);
      if (!lock) return undefined;
      // The lock is the user's session only once its desktop holds it (see assign).
      const desktop = await getDesktop(tenantId, poolId, lock.desktopId);
      return desktop?.sessionId === lock.sessionId ? lock : undefined;
    },
    async releaseStaleLock(tenantId, poolId, userId) {
      const lock = await getLock(tenantId, poolId, userId);
      if (!lock) return "none";
      const desktop = await getDesktop(tenantId, poolId, lock.desktopId);
      if (desktop?.sessionId === lock.sessionId) return "active";
      if (Date.parse(lock.startedAt) > Date.now() - lockStaleAfterMs) return "pending";
      await releaseLock(lock);
      return "released";
    },
    listLocksBefore: (startedBefore) => t.watching(entities.userLock, "LOCK", startedBefore),
    async endWithoutDesktop(lock, endedAt, endedBy) {
      // Only while the desktop is gone and the lock still names the session: a live one never ends here.
      const result = await transact(
        t.doc,
        {
          desktop: {
            ConditionCheck: {
              TableName: t.name,
              Key: keys.desktop(lock.tenantId, lock.poolId, lock.desktopId),
              ConditionExpression: "attribute_not_exists(pk)",
            },
          },
          lock: {
            Delete: {
              TableName: t.name,
              Key: keys.userLock(lock.tenantId, lock.poolId, lock.userId),
              ConditionExpression: "sessionId = :sid",
              ExpressionAttributeValues: { ":sid": lock.sessionId },
            },
          },
          record: {
            Put: {
              TableName: t.name,
              Item: entities.endedSession.toItem({ ...lock, state: "ENDED", endedAt, endedBy }),
              ConditionExpression: "attribute_not_exists(pk)",
            },
          },
        },
        { conflictIsRetry: false },
      );
      return result.ok;
    },
    ownedDesktop: async (tenantId, poolId, userId) =>
      (await t.get(entities.owner, keys.owner(tenantId, poolId, userId)))?.desktopId,
    // A dedicated user's later logons claim their own desktop like a floating one.
    assign: (session, opts = {}) => (opts.dedicate ? claimDedicating(session) : claimFloating(session)),
    async end(session, endedAt, endedBy): Promise<EndSessionResult> {
      const { tenantId, poolId, sessionId } = session;
      const ended: Session = { ...session, state: "ENDED", endedAt, endedBy };
      const write = (withLock: boolean) =>
        transact(
          t.doc,
          {
            desktop: {
              Update: {
                TableName: t.name,
                Key: keys.desktop(tenantId, poolId, session.desktopId),
                // REFRESHING is transitional: the watch index holds it from the logoff on.
                UpdateExpression: `SET #state = :refreshing, lastSessionId = :sid, updatedAt = :at, ${watchIndex.pk} = :wpk, ${watchIndex.sk} = :at REMOVE ${["sessionId", "userId", "sessionStartedAt", ...sessionActivityAttributes].join(", ")}`,
                ConditionExpression: "#state = :assigned AND sessionId = :sid",
                ExpressionAttributeNames: { "#state": "state" },
                ExpressionAttributeValues: {
                  ":refreshing": "REFRESHING",
                  ":assigned": "ASSIGNED",
                  ":sid": sessionId,
                  ":at": endedAt,
                  ":wpk": watch.partition("TRANSIT", session.desktopId),
                },
              },
            },
            // The lock goes with the session when it names it; a session whose lock is gone (or
            // names a later session of the user) still ends.
            lock: withLock
              ? {
                  Delete: {
                    TableName: t.name,
                    Key: keys.userLock(tenantId, poolId, session.userId),
                    ConditionExpression: "attribute_not_exists(pk) OR sessionId = :sid",
                    ExpressionAttributeValues: { ":sid": sessionId },
                  },
                }
              : undefined,
            record: {
              Put: {
                TableName: t.name,
                Item: entities.endedSession.toItem(ended),
                ConditionExpression: "attribute_not_exists(pk)",
              },
            },
          },
          { conflictIsRetry: false },
        );
      let result = await write(true);
      if (
        !result.ok &&
        conditionFailed(result.reasons, "lock") &&
        !conditionFailed(result.reasons, "desktop", "record")
      )
        result = await write(false);
      if (result.ok)
        return {
          outcome: "ended",
          desktop: { tenantId, poolId, desktopId: session.desktopId, datastoreId: session.datastoreId },
        };
      if (Object.values(result.reasons).includes("TransactionConflict"))
        throw new RetryLater(`logoff of ${sessionId} collided with another write`);
      return { outcome: "not-active" };
    },
    async recordActivity(session, report) {
      const [value, valueName, stampName] =
        report.kind === "connection"
          ? [report.disconnectedAt, "disconnectedAt", "connectionReportedAt"]
          : [report.idleSince, "idleSince", "idleReportedAt"];
      const old = await updateHeld(session, {
        UpdateExpression:
          value === null
            ? `SET ${stampName} = :at REMOVE ${valueName}`
            : `SET ${stampName} = :at, ${valueName} = if_not_exists(${valueName}, :value)`,
        // An older report than one already applied changes nothing; the same one again does.
        ConditionExpression: `#state = :assigned AND sessionId = :sid AND (attribute_not_exists(${stampName}) OR ${stampName} <= :at)`,
        ExpressionAttributeValues: {
          ":at": report.reportedAt,
          ...(value === null ? {} : { ":value": value }),
        },
      });
      if (!old) return { applied: false };
      if (value === null) return { applied: true, started: false };
      const before = old[valueName] as string | undefined;
      return {
        applied: true,
        since: before ?? value,
        started: before === undefined || old[stampName] === report.reportedAt,
      };
    },
    recordTimeoutWarning: (session, warning) =>
      updateHeld(session, {
        UpdateExpression: "SET timeoutWarning = :w",
        ConditionExpression: "#state = :assigned AND sessionId = :sid",
        ExpressionAttributeValues: { ":w": warning },
      }).then((old) => old !== undefined),
  };

  /** A conditional update of the desktop that holds the session: the item before, or undefined when refused. */
  async function updateHeld(
    session: Pick<Session, "tenantId" | "poolId" | "desktopId" | "sessionId">,
    update: { UpdateExpression: string; ConditionExpression: string; ExpressionAttributeValues: object },
  ): Promise<Record<string, unknown> | undefined> {
    try {
      const out = await t.doc.send(
        new UpdateCommand({
          TableName: t.name,
          Key: keys.desktop(session.tenantId, session.poolId, session.desktopId),
          UpdateExpression: update.UpdateExpression,
          ConditionExpression: update.ConditionExpression,
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: {
            ":assigned": "ASSIGNED",
            ":sid": session.sessionId,
            ...update.ExpressionAttributeValues,
          },
          ReturnValues: "ALL_OLD",
        }),
      );
      return out.Attributes ?? {};
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }
}
