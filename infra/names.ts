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
  "user-data-worker",
] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** The work queues of a region (each has its own dead-letter queue). */
export const QUEUE_KINDS = ["clone-jobs", "logoff", "replication", "user-data"] as const;
export type QueueKind = (typeof QUEUE_KINDS)[number];

/**
 * FIFO queues (names end in `.fifo`, and so do their DLQs'). User-data jobs of one user must run
 * in order (attach, commit, discard); the code sets MessageGroupId and MessageDeduplicationId.
 */
export const FIFO_QUEUE_KINDS: ReadonlySet<string> = new Set<QueueKind>(["user-data"]);

/**
 * `images`: the image store bucket. `replication`: the bucket the peer region ships into (user-data
 * deltas, image versions, tenant configuration), read by this region's replication worker.
 */
export type BucketKind = "images" | "replication";

export function stackName(stage: string, region: string): string {
  return `Pristine-${stage}-${region}`;
}

/** One table per region; table names are regional, so both regions use the same name. */
export function tableName(stage: string): string {
  return `pristine-${stage}`;
}

const fifoSuffix = (kind: string) => (FIFO_QUEUE_KINDS.has(kind) ? ".fifo" : "");

export function queueName(stage: string, kind: string): string {
  return `pristine-${stage}-${kind}${fifoSuffix(kind)}`;
}

export function deadLetterQueueName(stage: string, kind: string): string {
  return `pristine-${stage}-${kind}-dlq${fifoSuffix(kind)}`;
}

/** The URL SQS gives a queue (QueueUrl), from its region, account and name. */
export function queueUrl(region: string, account: string, name: string, urlSuffix = "amazonaws.com"): string {
  return `https://sqs.${region}.${urlSuffix}/${account}/${name}`;
}

/**
 * The region's name as the code knows it (PRISTINE_REGION_NAME, and the peer's
 * PRISTINE_PEER_REGION_NAME): the AWS region. It is recorded as the origin of user-data changes,
 * so both stacks must derive it the same way.
 */
export function regionName(region: string): string {
  return region;
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
