/**
 * The user-data and DR part of a local region: the user-data FIFO queue, the replication queue
 * and bucket, the peer's names, and their in-process workers (as the stack wires them in AWS).
 */
import { BucketAlreadyOwnedByYou, CreateBucketCommand } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { s3Client } from "../shared/adapters/s3/replication-bucket.ts";
import type { App } from "../shared/app.ts";
import { type DrConfig, type TransferSettings, userDataPath } from "../shared/config.ts";
import { replicationWorkerHandler, userDataWorkerHandler } from "../shared/workers/dr-handlers.ts";
import { DR_EVENT_SOURCES } from "../shared/workers/scaling.ts";
import { ensureQueueWithDlq, type QueueRef } from "./queues.ts";
import type { PollerOptions } from "./sqs-poller.ts";

export interface PeerOptions {
  name: string;
  /** The peer's resource prefix (default `pristine-<name>`), from which its names follow. */
  resourcePrefix?: string;
  /** Reach the peer through other endpoints (tests put a fault proxy there). */
  sqsEndpoint?: string;
  s3Endpoint?: string;
}

export interface DrResources {
  userData: QueueRef;
  replication: QueueRef;
  bucket: string;
  config: DrConfig;
}

async function ensureBucket(endpoint: string, bucket: string) {
  const s3 = s3Client(endpoint, "us-east-1");
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (err) {
    if (!(err instanceof BucketAlreadyOwnedByYou) && (err as Error).name !== "BucketAlreadyExists") throw err;
  } finally {
    s3.destroy();
  }
}

const replicationQueue = (sqs: SQSClient, prefix: string, visibilitySeconds = 900) =>
  // Messages wait by redelivery (a delta for the one before it), hence the higher receive count.
  ensureQueueWithDlq(sqs, `${prefix}-replication`, {
    visibilityTimeoutSeconds: visibilitySeconds,
    maxReceiveCount: 50,
  });

export async function ensureDrResources(opts: {
  sqs: SQSClient;
  sqsEndpoint: string;
  prefix: string;
  dataDir: string;
  userDataSizeBytes?: number;
  transfer?: TransferSettings;
  peer?: PeerOptions;
  visibilitySeconds?: number;
}): Promise<DrResources> {
  const userData = await ensureQueueWithDlq(opts.sqs, `${opts.prefix}-user-data`, {
    visibilityTimeoutSeconds: opts.visibilitySeconds ?? 900,
    fifo: true,
  });
  const replication = await replicationQueue(opts.sqs, opts.prefix, opts.visibilitySeconds);
  const bucket = `${opts.prefix}-replication`;
  await ensureBucket(opts.sqsEndpoint, bucket);
  let peer: DrConfig["peer"];
  if (opts.peer) {
    // Each stack knows its peer's names; locally the peer's queue and bucket may not exist yet.
    const peerPrefix = opts.peer.resourcePrefix ?? `pristine-${opts.peer.name}`;
    const peerQueue = await replicationQueue(opts.sqs, peerPrefix, opts.visibilitySeconds);
    await ensureBucket(opts.sqsEndpoint, `${peerPrefix}-replication`);
    peer = {
      name: opts.peer.name,
      bucket: `${peerPrefix}-replication`,
      replicationQueueUrl: peerQueue.url,
      // As local/region.ts names a region's table.
      tableName: `${peerPrefix}-table`,
      ...(opts.peer.sqsEndpoint ? { sqsEndpoint: opts.peer.sqsEndpoint } : {}),
      ...(opts.peer.s3Endpoint ? { s3Endpoint: opts.peer.s3Endpoint } : {}),
    };
  }
  return {
    userData,
    replication,
    bucket,
    config: {
      userDataQueueUrl: userData.url,
      replicationQueueUrl: replication.url,
      replicationBucket: bucket,
      userDataPath: userDataPath(opts.dataDir),
      userDataSizeBytes: opts.userDataSizeBytes ?? 1024 * 1024 * 1024,
      ...(opts.transfer ? { transfer: opts.transfer } : {}),
      ...(peer ? { peer } : {}),
    },
  };
}

/** The user-data and replication workers of a region, as its event source mappings configure them. */
export function drWorkers(app: App, sqs: SQSClient, res: DrResources, name: string) {
  return {
    "user-data": {
      sqs,
      queueUrl: res.userData.url,
      queueArn: res.userData.arn,
      functionName: `${name}-user-data`,
      handler: userDataWorkerHandler(app),
      batchSize: DR_EVENT_SOURCES["user-data-worker"].batchSize,
      concurrency: DR_EVENT_SOURCES["user-data-worker"].maxConcurrency,
      retryDelaySeconds: 1,
    },
    replication: {
      sqs,
      queueUrl: res.replication.url,
      queueArn: res.replication.arn,
      functionName: `${name}-replication`,
      handler: replicationWorkerHandler(app),
      batchSize: DR_EVENT_SOURCES["replication-worker"].batchSize,
      concurrency: DR_EVENT_SOURCES["replication-worker"].maxConcurrency,
      retryDelaySeconds: 1,
    },
  } satisfies Record<string, PollerOptions>;
}
