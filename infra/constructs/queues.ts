import { Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import {
  datastoreQueueKind,
  deadLetterQueueName,
  FIFO_QUEUE_KINDS,
  type FunctionName,
  type QueueKind,
  queueName,
} from "../names.ts";
import { FUNCTION_TIMEOUTS } from "./lambda-function.ts";

/** Receives before a message moves to the dead-letter queue. */
export const MAX_RECEIVE_COUNT = 5;

/** The replication queue's redrive count (local/dr-region.ts uses the same). */
export const REPLICATION_MAX_RECEIVE_COUNT = 50;

/** AWS's guidance for SQS event sources: visibility timeout = 6x the function timeout. */
export const VISIBILITY_TIMEOUT_FACTOR = 6;

export interface WorkQueueProps {
  readonly stage: string;
  /** Part of the physical name: pristine-<stage>-<kind>. */
  readonly kind: string;
  /** The function whose timeout sets the visibility timeout (it, or an agent running its code, consumes the queue). */
  readonly consumer: FunctionName;
  readonly retentionPeriod: Duration;
  /** Receives before a message moves to the DLQ (default MAX_RECEIVE_COUNT). */
  readonly maxReceiveCount?: number;
}

/**
 * A work queue with its own dead-letter queue: SSE, TLS only, redrive after 5 receives (unless
 * told otherwise). FIFO kinds (names.ts) get a FIFO queue and a FIFO DLQ, without content-based
 * deduplication: the producer sets MessageDeduplicationId and MessageGroupId itself.
 */
export class WorkQueue extends Construct {
  readonly kind: string;
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly fifo: boolean;
  readonly maxReceiveCount: number;

  constructor(scope: Construct, id: string, props: WorkQueueProps) {
    super(scope, id);
    this.kind = props.kind;
    this.fifo = FIFO_QUEUE_KINDS.has(props.kind);
    this.maxReceiveCount = props.maxReceiveCount ?? MAX_RECEIVE_COUNT;
    const fifo = this.fifo ? { fifo: true, contentBasedDeduplication: false } : {};

    this.deadLetterQueue = new sqs.Queue(this, "DeadLetterQueue", {
      queueName: deadLetterQueueName(props.stage, props.kind),
      ...fifo,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // A message keeps its original enqueue time in the DLQ, so keep it as long as SQS allows.
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.queue = new sqs.Queue(this, "Queue", {
      queueName: queueName(props.stage, props.kind),
      ...fifo,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(
        FUNCTION_TIMEOUTS[props.consumer].toSeconds() * VISIBILITY_TIMEOUT_FACTOR,
      ),
      retentionPeriod: props.retentionPeriod,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: this.maxReceiveCount },
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}

export interface QueuesProps {
  readonly stage: string;
  /** Ids of host-local datastores served by agents; each gets a work queue of its own. */
  readonly hostDatastores: readonly string[];
}

/** The region's work queues. */
export class Queues extends Construct {
  readonly byKind: Readonly<Record<QueueKind, WorkQueue>>;
  /** Host-local datastore id -> the queue its agent polls. */
  readonly hostDatastores: ReadonlyMap<string, WorkQueue>;

  constructor(scope: Construct, id: string, props: QueuesProps) {
    super(scope, id);
    this.byKind = {
      "clone-jobs": new WorkQueue(this, "CloneJobs", {
        stage: props.stage,
        kind: "clone-jobs",
        consumer: "clone-worker",
        retentionPeriod: Duration.days(4),
      }),
      logoff: new WorkQueue(this, "Logoff", {
        stage: props.stage,
        kind: "logoff",
        consumer: "logoff",
        retentionPeriod: Duration.days(4),
      }),
      // User data waiting for the DR region must survive a long peer outage. Messages wait by
      // redelivery (a delta waits for the one before it, a failback for the peer to catch up), so
      // they get many receives before the DLQ, as in the local runtime (local/dr-region.ts).
      replication: new WorkQueue(this, "Replication", {
        stage: props.stage,
        kind: "replication",
        consumer: "replication-worker",
        retentionPeriod: Duration.days(7),
        maxReceiveCount: REPLICATION_MAX_RECEIVE_COUNT,
      }),
      // FIFO, one group per user: attach at logon, commit at logoff, discard. A lost commit would
      // lose user data, so keep messages as long as SQS allows.
      "user-data": new WorkQueue(this, "UserData", {
        stage: props.stage,
        kind: "user-data",
        consumer: "user-data-worker",
        retentionPeriod: Duration.days(14),
      }),
    };
    const hostQueues = new Map<string, WorkQueue>();
    for (const datastoreId of props.hostDatastores) {
      hostQueues.set(
        datastoreId,
        new WorkQueue(this, `Datastore-${datastoreId}`, {
          stage: props.stage,
          kind: datastoreQueueKind(datastoreId),
          // Agents run the clone worker's handler, so its timeout bounds one batch.
          consumer: "clone-worker",
          retentionPeriod: Duration.days(4),
        }),
      );
    }
    this.hostDatastores = hostQueues;
  }

  /** Every work queue of the region, the per-datastore ones included. */
  all(): WorkQueue[] {
    return [...Object.values(this.byKind), ...this.hostDatastores.values()];
  }

  /**
   * What a producer of clone jobs needs in its environment: the clone-jobs queue, and when host
   * datastores are configured, the queue of each (JSON object, datastore id -> queue URL).
   */
  cloneJobsEnvironment(): Record<string, string> {
    const env: Record<string, string> = {
      PRISTINE_CLONE_JOBS_QUEUE_URL: this.byKind["clone-jobs"].queue.queueUrl,
    };
    if (this.hostDatastores.size > 0) {
      const urls: Record<string, string> = {};
      for (const [datastoreId, workQueue] of this.hostDatastores)
        urls[datastoreId] = workQueue.queue.queueUrl;
      env.PRISTINE_DATASTORE_QUEUE_URLS = Stack.of(this).toJsonString(urls);
    }
    return env;
  }

  /** sqs:SendMessage (and GetQueueAttributes/GetQueueUrl) on the clone-jobs and host datastore queues. */
  grantSendCloneJobs(grantee: iam.IGrantable): void {
    this.byKind["clone-jobs"].queue.grantSendMessages(grantee);
    for (const workQueue of this.hostDatastores.values()) workQueue.queue.grantSendMessages(grantee);
  }
}

/** sqs:SendMessage only (SendMessageBatch is authorized as SendMessage); no queue attributes. */
export function grantSend(queue: sqs.IQueue, role: iam.Role): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({ actions: ["sqs:SendMessage"], resources: [queue.queueArn] }),
  );
}
