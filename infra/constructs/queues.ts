import { Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import type * as iam from "aws-cdk-lib/aws-iam";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import {
  datastoreQueueKind,
  deadLetterQueueName,
  type FunctionName,
  type QueueKind,
  queueName,
} from "../names.ts";
import { FUNCTION_TIMEOUTS } from "./lambda-function.ts";

/** Receives before a message moves to the dead-letter queue. */
export const MAX_RECEIVE_COUNT = 5;

/** AWS's guidance for SQS event sources: visibility timeout = 6x the function timeout. */
export const VISIBILITY_TIMEOUT_FACTOR = 6;

export interface WorkQueueProps {
  readonly stage: string;
  /** Part of the physical name: pristine-<stage>-<kind>. */
  readonly kind: string;
  /** The function whose timeout sets the visibility timeout (it, or an agent running its code, consumes the queue). */
  readonly consumer: FunctionName;
  readonly retentionPeriod: Duration;
}

/** A work queue with its own dead-letter queue: SSE, TLS only, redrive after 5 receives. */
export class WorkQueue extends Construct {
  readonly kind: string;
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: WorkQueueProps) {
    super(scope, id);
    this.kind = props.kind;

    this.deadLetterQueue = new sqs.Queue(this, "DeadLetterQueue", {
      queueName: deadLetterQueueName(props.stage, props.kind),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // A message keeps its original enqueue time in the DLQ, so keep it as long as SQS allows.
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.queue = new sqs.Queue(this, "Queue", {
      queueName: queueName(props.stage, props.kind),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(
        FUNCTION_TIMEOUTS[props.consumer].toSeconds() * VISIBILITY_TIMEOUT_FACTOR,
      ),
      retentionPeriod: props.retentionPeriod,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: MAX_RECEIVE_COUNT },
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
      // User data waiting for the DR region must survive a long peer outage.
      replication: new WorkQueue(this, "Replication", {
        stage: props.stage,
        kind: "replication",
        consumer: "replication-worker",
        retentionPeriod: Duration.days(7),
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
