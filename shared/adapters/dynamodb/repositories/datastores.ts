import { PutCommand } from "@aws-sdk/lib-dynamodb";
import type { DatastoreUsage } from "../../../domain/model.ts";
import type { DatastoreRepository, Reservation } from "../../../ports/index.ts";
import { entities } from "../entities.ts";
import { keys } from "../keys.ts";
import type { Table } from "../table.ts";

/** A reservation is a conditional add on the datastore's usage item: never past its limit. */
export const reservationUpdate = (table: string, r: Reservation) => ({
  Update: {
    TableName: table,
    Key: keys.datastoreUsage(r.datastoreId),
    UpdateExpression:
      "SET entity = :usage, datastoreId = :ds, provisionedBytes = if_not_exists(provisionedBytes, :zero) + :bytes",
    ConditionExpression: "attribute_not_exists(provisionedBytes) OR provisionedBytes <= :max",
    ExpressionAttributeValues: {
      ":usage": entities.datastoreUsage.name,
      ":ds": r.datastoreId,
      ":zero": 0,
      ":bytes": r.bytes,
      ":max": r.limitBytes - r.bytes,
    },
  },
});

/**
 * The order in which to try a scope's slots: first those this process neither holds nor is trying
 * (starting at a random one, so that concurrent takers rarely try the same ones), then those (free
 * only if a lease of its own has expired or a try fails). In a worker that runs many disk jobs at
 * once, the first try is then nearly always a free slot. Only the order: each try is still a
 * conditional write.
 */
export function slotOrder(slots: number, heldHere: ReadonlySet<number> | undefined): number[] {
  const first = Math.floor(Math.random() * slots);
  const all = Array.from({ length: slots }, (_, i) => (first + i) % slots);
  if (!heldHere?.size) return all;
  return [...all.filter((s) => !heldHere.has(s)), ...all.filter((s) => heldHere.has(s))];
}

export function datastoreRepository(t: Table): DatastoreRepository {
  /** The slots of each scope that this process's disk jobs hold or are trying, and by how many. */
  const heldHere = new Map<string, Map<number, number>>();
  const holding = (scope: string, slot: number, by: 1 | -1) => {
    const counts = heldHere.get(scope) ?? new Map<number, number>();
    const n = (counts.get(slot) ?? 0) + by;
    if (n > 0) counts.set(slot, n);
    else counts.delete(slot);
    if (counts.size > 0) heldHere.set(scope, counts);
    else heldHere.delete(scope);
  };
  const mine = (scope: string) => new Set(heldHere.get(scope)?.keys());
  return {
    async put(ds) {
      await t.doc.send(new PutCommand({ TableName: t.name, Item: entities.datastore.toItem(ds) }));
    },
    get: (id) => t.get(entities.datastore, keys.datastore(id)),
    async list() {
      // Registrations and usage items share one partition: one query reads both, told apart by key.
      const items = await t.queryItems({
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": keys.datastoresPartition },
        ConsistentRead: true,
      });
      const usage = new Map<string, number>();
      for (const item of items)
        if (String(item.sk).startsWith(keys.usagePrefix))
          usage.set(String(item.datastoreId), Number(item.provisionedBytes ?? 0));
      return items
        .filter((item) => String(item.sk).startsWith(keys.datastorePrefix))
        .map((item): DatastoreUsage => {
          const ds = entities.datastore.fromItem(item);
          return { ...ds, provisionedBytes: usage.get(ds.datastoreId) ?? 0 };
        });
    },
    async provisionedBytes(id) {
      // Read without the entity check: usage items written before they carried one count too.
      const items = await t.queryItems({
        KeyConditionExpression: "pk = :pk AND sk = :sk",
        ExpressionAttributeValues: keyValues(keys.datastoreUsage(id)),
        ConsistentRead: true,
      });
      return Number(items[0]?.provisionedBytes ?? 0);
    },
    async acquireSlot(scope, holder, slots, leaseMs) {
      const now = Date.now();
      const leaseSlot = async (slot: number) => {
        const leased = await t.tryPut(
          entities.diskSlot.toItem({
            scope,
            slot,
            holder,
            leaseExpiresAtMs: now + leaseMs,
            acquiredAt: new Date(now).toISOString(),
          }),
          {
            expression:
              "attribute_not_exists(pk) OR holder = :holder OR attribute_not_exists(leaseExpiresAtMs) OR leaseExpiresAtMs < :now",
            values: { ":holder": holder, ":now": now },
          },
        );
        return leased.written;
      };
      const tried = new Set<number>();
      /** Held by others, as one read saw them after a first try failed (a cap that may be reached). */
      let heldElsewhere: Set<number> | undefined;
      for (;;) {
        // Chosen again at each try: meanwhile other jobs of this process took or freed slots.
        const slot = slotOrder(slots, mine(scope)).find((s) => !tried.has(s) && !heldElsewhere?.has(s));
        if (slot === undefined) return undefined;
        tried.add(slot);
        // Marked before the write, so that a concurrent take of this process tries another slot.
        holding(scope, slot, 1);
        let written = false;
        try {
          written = await leaseSlot(slot);
        } finally {
          if (!written) holding(scope, slot, -1);
        }
        if (written) return slot;
        // One read says which slots are held: at a reached cap a job costs two calls, not one per slot.
        if (!heldElsewhere) {
          const prefix = keys.diskSlotPrefix(scope);
          heldElsewhere = new Set(
            (await t.byPrefix(entities.diskSlot, prefix.pk, prefix.sk))
              .filter((s) => s.holder !== holder && s.leaseExpiresAtMs >= now)
              .map((s) => s.slot),
          );
        }
      }
    },
    async releaseSlot(scope, slot, holder) {
      holding(scope, slot, -1);
      await t.remove(keys.diskSlot(scope, slot), {
        expression: "holder = :holder",
        values: { ":holder": holder },
      });
    },
    takeTurn: (task, at, everyMs) =>
      t.tryUpdate({
        Key: keys.turn(task),
        UpdateExpression: "SET entity = :entity, doneAtMs = :at",
        ConditionExpression: "attribute_not_exists(doneAtMs) OR doneAtMs <= :due",
        ExpressionAttributeValues: { ":entity": "turn", ":at": at.getTime(), ":due": at.getTime() - everyMs },
      }),
    async recount(datastoreId, seen, counted, at, confirmAfterMs) {
      const key = keys.datastoreUsage(datastoreId);
      // Names for every attribute: a reserved word never breaks the expression.
      const names = { "#rc": "recount", "#seen": "seen", "#counted": "counted", "#at": "atMs" };
      const noted = { ":seen": seen, ":counted": counted };
      if (seen === counted) {
        await t.tryUpdate({
          Key: key,
          UpdateExpression: "REMOVE #rc",
          ConditionExpression: "attribute_exists(#rc)",
          ExpressionAttributeNames: { "#rc": "recount" },
        });
        return "in-step";
      }
      // The same difference, noted long enough ago, and the counter untouched since: put it right.
      const fixed = await t.tryUpdate({
        Key: key,
        UpdateExpression: "SET provisionedBytes = :counted REMOVE #rc",
        ConditionExpression:
          "provisionedBytes = :seen AND #rc.#seen = :seen AND #rc.#counted = :counted AND #rc.#at <= :due",
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: { ...noted, ":due": at.getTime() - confirmAfterMs },
      });
      if (fixed) return "fixed";
      // Noted with the time it was first seen: a note of the same difference is kept as it is.
      await t.tryUpdate({
        Key: key,
        UpdateExpression: "SET entity = :usage, datastoreId = :ds, #rc = :recount",
        ConditionExpression: "attribute_not_exists(#rc) OR #rc.#seen <> :seen OR #rc.#counted <> :counted",
        ExpressionAttributeNames: { "#rc": "recount", "#seen": "seen", "#counted": "counted" },
        ExpressionAttributeValues: {
          ...noted,
          ":usage": entities.datastoreUsage.name,
          ":ds": datastoreId,
          ":recount": { seen, counted, atMs: at.getTime() },
        },
      });
      return "noted";
    },
  };
}

const keyValues = (key: { pk: string; sk: string }) => ({ ":pk": key.pk, ":sk": key.sk });
