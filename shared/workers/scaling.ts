/**
 * Batch size and concurrency of the DR workers' event sources: the stacks' event source mappings
 * and the local pollers read the same figures, so a local bench measures what AWS would run.
 *
 * - user-data (FIFO): a batch's records run one by one (each user's group in order), so one
 *   record a batch and parallelism from concurrency: 20 users committed or attached at once.
 * - replication: a batch's records run in parallel; 12 x 2 keeps 24 deltas moving (the DR
 *   bench's queue waits before the ship and the apply), without a batch waiting on its slowest.
 */
export const DR_EVENT_SOURCES = {
  "user-data-worker": { batchSize: 1, maxConcurrency: 20 },
  "replication-worker": { batchSize: 2, maxConcurrency: 12 },
} as const;
