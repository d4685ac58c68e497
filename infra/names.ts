// Deterministic physical names. Both regional stacks derive each other's resource names from
// stage + region + account with these functions, so no ARN is ever copied by hand and no
// cross-region reference (custom resource) is needed.

export type RegionRole = "primary" | "dr";

/** The folders under functions/, one Lambda entry point each. */
export const FUNCTION_NAMES = [
  "api",
  "authorizer",
  "clone-worker",
  "logoff",
  "reconciler",
  "replication-worker",
] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** The work queues of a region (each has its own dead-letter queue). */
export const QUEUE_KINDS = ["clone-jobs", "logoff", "replication"] as const;
export type QueueKind = (typeof QUEUE_KINDS)[number];

export type BucketKind = "images" | "user-data";

export function stackName(stage: string, region: string): string {
  return `Pristine-${stage}-${region}`;
}

/** One table per region; table names are regional, so both regions use the same name. */
export function tableName(stage: string): string {
  return `pristine-${stage}`;
}

export function queueName(stage: string, kind: string): string {
  return `pristine-${stage}-${kind}`;
}

export function deadLetterQueueName(stage: string, kind: string): string {
  return `pristine-${stage}-${kind}-dlq`;
}

/** The queue a host agent polls for one host-local datastore (agent mode). */
export function datastoreQueueKind(datastoreId: string): string {
  return `datastore-${datastoreId}`;
}

/**
 * Bucket names are global, so they carry account and region. `account` may be the
 * `AWS::AccountId` token when the stacks are synthesized without an account: both stacks are
 * always deployed to the same account, so the token resolves to the same value in both.
 */
export function bucketName(stage: string, kind: BucketKind, account: string, region: string): string {
  return `pristine-${stage}-${kind}-${account}-${region}`;
}

export function alarmTopicName(stage: string): string {
  return `pristine-${stage}-alarms`;
}
