/**
 * The region's single table as data: keys, the free-desktop and watch indexes and the TTL attribute. The local
 * runtime's `ensureTable` and the CDK construct are both built from it, so they cannot drift (a
 * test compares the synthesized table with it).
 */
export interface TableSchema {
  partitionKey: string;
  sortKey: string;
  indexes: { name: string; partitionKey: string; sortKey: string }[];
  /** Epoch seconds after which DynamoDB deletes an item (idempotency records). */
  ttlAttribute: string;
}

export const freeIndex = { name: "gsi1", pk: "gsi1pk", sk: "gsi1sk" } as const;

/**
 * The reconciler's sparse index: only items it must look after carry its keys (desktops in a
 * transitional state or ASSIGNED, users' locks, versions being published, pools, users' data behind
 * replication), sorted by the time
 * since which they wait, so "waiting since before T" is a query, not a scan (keys.ts, `watch`).
 */
export const watchIndex = { name: "gsi2", pk: "gsi2pk", sk: "gsi2sk" } as const;

export const tableSchema: TableSchema = {
  partitionKey: "pk",
  sortKey: "sk",
  indexes: [
    { name: freeIndex.name, partitionKey: freeIndex.pk, sortKey: freeIndex.sk },
    { name: watchIndex.name, partitionKey: watchIndex.pk, sortKey: watchIndex.sk },
  ],
  ttlAttribute: "expiresAt",
};
