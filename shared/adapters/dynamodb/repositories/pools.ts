import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { Desktop } from "../../../domain/model.ts";
import type { PoolRepository, Reservation, TenantCharge } from "../../../ports/index.ts";
import { entities } from "../entities.ts";
import { isConditionFailure, transact } from "../errors.ts";
import { keys } from "../keys.ts";
import type { Table } from "../table.ts";
import { reservationUpdate } from "./datastores.ts";
import { desktopItem } from "./desktops.ts";
import { chargeUpdate } from "./quotas.ts";

export function poolRepository(t: Table): PoolRepository {
  /**
   * Writes the pool change with its reservations and its tenant's charge in one transaction, then
   * its new desktops; false, and nothing written, when a datastore no longer has the room, the
   * charge would pass a quota or the pool changed meanwhile.
   */
  const withDesktops = async (
    poolWrite: object,
    desktops: Desktop[],
    reservations: Reservation[],
    charge: TenantCharge,
  ) => {
    const items: Record<string, object> = { pool: poolWrite };
    if (charge.desktops > 0 || charge.provisionedBytes > 0) items.charge = chargeUpdate(t.name, charge);
    reservations.forEach((r, i) => {
      items[`reservation${i}`] = reservationUpdate(t.name, r);
    });
    const result = await transact(t.doc, items as never, { conflictIsRetry: false });
    if (!result.ok) {
      const refused = Object.values<string>(result.reasons).filter((r) => r !== "None");
      if (refused.every((r) => r === "ConditionalCheckFailed" || r === "TransactionConflict")) return false;
      throw new Error(`pool write cancelled: ${refused.join(", ")}`);
    }
    await t.batchPut(desktops.map(desktopItem));
    return true;
  };

  return {
    create: (pool, desktops, reservations, charge) =>
      withDesktops(
        {
          Put: {
            TableName: t.name,
            Item: entities.pool.toItem(pool),
            ConditionExpression: "attribute_not_exists(pk)",
          },
        },
        desktops,
        reservations,
        charge,
      ),
    grow: (pool, newSize, desktops, reservations, charge) =>
      withDesktops(
        {
          Update: {
            TableName: t.name,
            Key: keys.pool(pool.tenantId, pool.poolId),
            UpdateExpression: "SET #size = :new",
            ConditionExpression: "#size = :old AND #state = :active",
            ExpressionAttributeNames: { "#size": "size", "#state": "state" },
            ExpressionAttributeValues: { ":new": newSize, ":old": pool.size, ":active": "ACTIVE" },
          },
        },
        desktops,
        reservations,
        charge,
      ),
    async setSizing(tenantId, poolId, sizing) {
      const set = Object.entries(sizing).filter(([, v]) => v !== undefined);
      const gone = Object.entries(sizing)
        .filter(([, v]) => v === undefined)
        .map(([k]) => k);
      const names = Object.fromEntries(Object.keys(sizing).map((k) => [`#${k}`, k]));
      const update = [
        set.length ? `SET ${set.map(([k]) => `#${k} = :${k}`).join(", ")}` : "",
        gone.length ? `REMOVE ${gone.map((k) => `#${k}`).join(", ")}` : "",
      ]
        .filter(Boolean)
        .join(" ");
      if (!update) return;
      await t.doc.send(
        new UpdateCommand({
          TableName: t.name,
          Key: keys.pool(tenantId, poolId),
          UpdateExpression: update,
          ConditionExpression: "#state = :active",
          ExpressionAttributeNames: { ...names, "#state": "state" },
          ExpressionAttributeValues: {
            ...Object.fromEntries(set.map(([k, v]) => [`:${k}`, v])),
            ":active": "ACTIVE",
          },
        }),
      );
    },
    async startRecompose(tenantId, poolId, imageVersion, recompose) {
      await t.doc.send(
        new UpdateCommand({
          TableName: t.name,
          Key: keys.pool(tenantId, poolId),
          UpdateExpression: "SET imageVersion = :v, recompose = :r",
          ConditionExpression: "#state = :active",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: { ":v": imageVersion, ":r": recompose, ":active": "ACTIVE" },
        }),
      );
    },
    get: (tenantId, poolId) => t.get(entities.pool, keys.pool(tenantId, poolId)),
    list: (tenantId) => t.byPrefix(entities.pool, keys.tenant(tenantId).pk, keys.poolPrefix),
    // Every tenant's pools through the watch index (the reconciler's recount), never a scan.
    listAll: () => t.watching(entities.pool, "POOL"),
    async markDeleting(tenantId, poolId) {
      await t.doc.send(
        new UpdateCommand({
          TableName: t.name,
          Key: keys.pool(tenantId, poolId),
          UpdateExpression: "SET #state = :deleting",
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: { ":deleting": "DELETING" },
        }),
      );
    },
    async remove(tenantId, poolId) {
      await t.remove(keys.pool(tenantId, poolId));
    },
    async setSessionTimeouts(tenantId, poolId, timeouts) {
      try {
        await t.doc.send(
          new UpdateCommand({
            TableName: t.name,
            Key: keys.pool(tenantId, poolId),
            UpdateExpression: timeouts ? "SET sessionTimeouts = :t" : "REMOVE sessionTimeouts",
            ConditionExpression: "#state = :active",
            ExpressionAttributeNames: { "#state": "state" },
            ExpressionAttributeValues: { ":active": "ACTIVE", ...(timeouts ? { ":t": timeouts } : {}) },
          }),
        );
        return true;
      } catch (err) {
        if (isConditionFailure(err)) return false;
        throw err;
      }
    },
  };
}
