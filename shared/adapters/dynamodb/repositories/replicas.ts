import type { ReplicaRepository } from "../../../ports/index.ts";
import { entities } from "../entities.ts";
import { keys } from "../keys.ts";
import type { Table } from "../table.ts";

export function replicaRepository(t: Table): ReplicaRepository {
  return {
    async record(r, created) {
      // An upsert: every prepare job records the replica; `creations` counts real writes of its file.
      await t.tryUpdate({
        Key: keys.replica(r.tenantId, r.imageId, r.version, r.datastoreId),
        UpdateExpression:
          "SET entity = :entity, tenantId = :t, imageId = :i, version = :n, datastoreId = :ds, sha256 = :sha, createdAt = if_not_exists(createdAt, :at) ADD creations :c",
        ExpressionAttributeValues: {
          ":entity": entities.replica.name,
          ":t": r.tenantId,
          ":i": r.imageId,
          ":n": r.version,
          ":ds": r.datastoreId,
          ":sha": r.sha256,
          ":at": r.createdAt,
          ":c": created ? 1 : 0,
        },
      });
    },
    list: (tenantId, imageId, version) =>
      t.byPrefix(entities.replica, keys.tenant(tenantId).pk, keys.replicaPrefix(imageId, version)),
    async remove(r) {
      await t.remove(keys.replica(r.tenantId, r.imageId, r.version, r.datastoreId));
    },
    async leaseCopy(r, holder, leaseMs) {
      const now = Date.now();
      const lease = await t.tryPut(
        entities.replicaCopyLease.toItem({
          tenantId: r.tenantId,
          imageId: r.imageId,
          version: r.version,
          datastoreId: r.datastoreId,
          holder,
          leaseExpiresAtMs: now + leaseMs,
        }),
        {
          expression: "attribute_not_exists(pk) OR holder = :holder OR leaseExpiresAtMs < :now",
          values: { ":holder": holder, ":now": now },
        },
      );
      return lease.written;
    },
    async releaseCopy(r, holder) {
      await t.remove(keys.replicaCopyLease(r.tenantId, r.imageId, r.version, r.datastoreId), {
        expression: "holder = :holder",
        values: { ":holder": holder },
      });
    },
  };
}
