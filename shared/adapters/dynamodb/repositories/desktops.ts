import { QueryCommand } from "@aws-sdk/lib-dynamodb";
import type { Desktop } from "../../../domain/model.ts";
import type { DesktopRepository } from "../../../ports/index.ts";
import { entities } from "../entities.ts";
import { transact } from "../errors.ts";
import { keys, watch } from "../keys.ts";
import type { Table } from "../table.ts";
import { freeIndex, watchIndex } from "../table-schema.ts";
import * as writes from "./desktop-writes.ts";
import { releaseUpdate } from "./quotas.ts";

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

/** A desktop's item: its `spread` token, and the free index's keys while it is AVAILABLE. */
export function desktopItem(d: Desktop) {
  return entities.desktop.toItem(d, {
    spread: spreadToken(d.slot),
    ...(d.state === "AVAILABLE"
      ? { [freeIndex.pk]: keys.freeDesktops(d.tenantId, d.poolId), [freeIndex.sk]: spreadToken(d.slot) }
      : {}),
  });
}

/**
 * Each process walks a pool's slots round-robin from a random start, probing at a slot's own place:
 * its concurrent logons then aim at distinct desktops. The pool's size is only a hint for this
 * walk (read once a minute), never a correctness input: the claim itself is conditional.
 */
const probeCursors = new Map<string, { next: number; size: Promise<number>; readAt: number }>();

export function desktopRepository(t: Table): DesktopRepository {
  const freeQuery = async (pk: string, condition: string, token: string, max: number) => {
    const out = await t.doc.send(
      new QueryCommand({
        TableName: t.name,
        IndexName: freeIndex.name,
        KeyConditionExpression: `${freeIndex.pk} = :pk AND ${condition}`,
        ExpressionAttributeValues: { ":pk": pk, ":token": token },
        Limit: max,
      }),
    );
    return (out.Items ?? []).map((item) => entities.desktop.fromItem(item));
  };

  const probeSlot = (tenantId: string, poolId: string) => {
    const poolKey = keys.freeDesktops(tenantId, poolId);
    let cursor = probeCursors.get(poolKey);
    if (!cursor || Date.now() - cursor.readAt > 60_000) {
      // Set before the read so that concurrent logons share one cursor (and one read).
      const size = t
        .get(entities.pool, keys.pool(tenantId, poolId), false)
        .then((pool) => Math.max(1, pool?.size ?? 1));
      cursor = { next: cursor?.next ?? Math.floor(Math.random() * 1_000_000), size, readAt: Date.now() };
      // A failed read fails the logons that share it, not the next minute's: it is read again.
      size.catch(() => {
        if (probeCursors.get(poolKey)?.size === size) probeCursors.delete(poolKey);
      });
      if (probeCursors.size > 10_000) probeCursors.clear();
      probeCursors.set(poolKey, cursor);
    }
    const slot = cursor.next++;
    return cursor.size.then((size) => tokenAt((slot % size) * phi));
  };

  return {
    get: (tenantId, poolId, desktopId) => t.get(entities.desktop, keys.desktop(tenantId, poolId, desktopId)),
    // The table counts: no item comes back (a pool's every desktop would, to be counted here).
    countAssigned: (tenantId, poolId) =>
      t.count({
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
        FilterExpression: "#state = :assigned",
        ExpressionAttributeNames: { "#state": "state" },
        ExpressionAttributeValues: {
          ":pk": keys.poolPartition(tenantId, poolId),
          ":prefix": keys.desktopPrefix,
          ":assigned": "ASSIGNED",
        },
        ConsistentRead: true,
      }),
    getMany: (tenantId, poolId, desktopIds) =>
      t.batchGet(
        entities.desktop,
        desktopIds.map((id) => keys.desktop(tenantId, poolId, id)),
      ),
    list: (tenantId, poolId) =>
      t.byPrefix(entities.desktop, keys.poolPartition(tenantId, poolId), keys.desktopPrefix),
    async findFree(tenantId, poolId, limit) {
      const pk = keys.freeDesktops(tenantId, poolId);
      const token = await probeSlot(tenantId, poolId);
      const found = await freeQuery(pk, `${freeIndex.sk} >= :token`, token, limit);
      if (found.length < limit)
        found.push(...(await freeQuery(pk, `${freeIndex.sk} < :token`, token, limit - found.length)));
      return found;
    },
    transition: (d, from, to, changes = {}, fence) =>
      writes.transition(t, d, from, to, changes, fence, spreadToken),
    takeForDiskJob: (d, state, expect) => writes.takeForDiskJob(t, d, state, expect),
    takeManyForDiskJob: (takes) => writes.takeMany(t, takes),
    handOver: (handovers) => writes.handOverMany(t, handovers, spreadToken),
    markConnected: (d, sessionId) =>
      t.tryUpdate({
        Key: keys.desktop(d.tenantId, d.poolId, d.desktopId),
        UpdateExpression: "SET connectedSessionId = :sid",
        ConditionExpression: "#state = :assigned AND sessionId = :sid",
        ExpressionAttributeNames: { "#state": "state" },
        ExpressionAttributeValues: { ":sid": sessionId, ":assigned": "ASSIGNED" },
      }),
    // A scan, on purpose: a host reads its desktops when it starts or comes back, and the
    // reconciler when a host is late; neither is a request path.
    async listOnDatastores(datastoreIds, states) {
      if (datastoreIds.length === 0 || states.length === 0) return [];
      const values: Record<string, unknown> = {};
      datastoreIds.forEach((ds, i) => {
        values[`:ds${i}`] = ds;
      });
      states.forEach((s, i) => {
        values[`:s${i}`] = s;
      });
      return t.scanAll(
        entities.desktop,
        `datastoreId IN (${datastoreIds.map((_, i) => `:ds${i}`).join(", ")}) AND #state IN (${states.map((_, i) => `:s${i}`).join(", ")})`,
        values,
        { "#state": "state" },
      );
    },
    async markResent(d, at) {
      const watchPk = watch.desktopPartition(d.state, d.desktopId);
      // It waits from the re-send on: found again only if this job is lost too.
      await t.tryUpdate({
        Key: keys.desktop(d.tenantId, d.poolId, d.desktopId),
        UpdateExpression: `SET resentAt = :at${watchPk ? `, ${watchIndex.pk} = :wpk, ${watchIndex.sk} = :at` : ""}`,
        ConditionExpression: "#state = :state",
        ExpressionAttributeNames: { "#state": "state" },
        ExpressionAttributeValues: { ":at": at, ":state": d.state, ...(watchPk ? { ":wpk": watchPk } : {}) },
      });
    },
    async remove(d) {
      // The desktop, its reservation and its tenant's charge go together, once: a repeated delete finds it gone.
      const result = await transact(t.doc, {
        desktop: {
          Delete: {
            TableName: t.name,
            Key: keys.desktop(d.tenantId, d.poolId, d.desktopId),
            ConditionExpression: "attribute_exists(pk)",
          },
        },
        release: d.provisionedBytes
          ? {
              Update: {
                TableName: t.name,
                Key: keys.datastoreUsage(d.datastoreId),
                // Typed like a reservation's write, so that usage items always carry their entity.
                UpdateExpression: "SET entity = :usage, datastoreId = :ds ADD provisionedBytes :minus",
                ExpressionAttributeValues: {
                  ":usage": entities.datastoreUsage.name,
                  ":ds": d.datastoreId,
                  ":minus": -d.provisionedBytes,
                },
              },
            }
          : undefined,
        quota: releaseUpdate(t.name, d.tenantId, d.provisionedBytes ?? 0),
      });
      if (!result.ok && result.reasons.desktop !== "ConditionalCheckFailed")
        throw new Error(`removing desktop ${d.desktopId} failed: ${JSON.stringify(result.reasons)}`);
    },
    async replace(old, fresh) {
      const result = await transact(
        t.doc,
        {
          old: {
            Delete: {
              TableName: t.name,
              Key: keys.desktop(old.tenantId, old.poolId, old.desktopId),
              ConditionExpression: "#state = :deleting",
              ExpressionAttributeNames: { "#state": "state" },
              ExpressionAttributeValues: { ":deleting": "DELETING" },
            },
          },
          fresh: {
            Put: {
              TableName: t.name,
              Item: desktopItem(fresh),
              ConditionExpression: "attribute_not_exists(pk)",
            },
          },
        },
        { conflictIsRetry: false },
      );
      return result.ok;
    },
    // A scan, on purpose: rebalancing is a rare operator action.
    listFreeOnDatastore: (datastoreId) =>
      t.scanAll(
        entities.desktop,
        "#state = :available AND datastoreId = :ds",
        { ":available": "AVAILABLE", ":ds": datastoreId },
        { "#state": "state" },
      ),
    // Queries of the sparse watch index, never a scan: the reconciler runs every few minutes.
    listAssigned: () => t.watching(entities.desktop, "ASSIGNED"),
    listStuck: (updatedBefore) => t.watching(entities.desktop, "TRANSIT", updatedBefore),
  };
}
