import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { documentClient, dynamoClient } from "./adapters/dynamodb/client.ts";
import { dynamoPeerFence } from "./adapters/dynamodb/peer-fence.ts";
import { dynamoRepositories } from "./adapters/dynamodb/repositories/index.ts";
import { eventBridgeBus, noBus, queueBus } from "./adapters/events/event-bus.ts";
import { type FlushingRecorder, metricRecorder } from "./adapters/metrics/recorder.ts";
import { s3Client, s3PeerRegion, s3ReplicaInbox } from "./adapters/s3/replication-bucket.ts";
import { sqsReplicationQueue, sqsUserDataJobQueue } from "./adapters/sqs/dr-queues.ts";
import { sqsClient, sqsJobQueue } from "./adapters/sqs/queue.ts";
import {
  incomingImagePath,
  installImageFile,
  qcow2Driver,
  qcow2Paths,
} from "./adapters/storage/qcow2-driver.ts";
import { qcow2UserDataStore } from "./adapters/storage/user-data-store.ts";
import { type PristineConfig, userDataPath } from "./config.ts";
import type { RegionDefaults } from "./domain/clone-jobs.ts";
import { defaultQuotas } from "./domain/quotas.ts";
import type { Ports } from "./ports/index.ts";
import { applyV8Flags } from "./v8-flags.ts";

export interface App {
  config: PristineConfig;
  ports: Ports;
  metrics: FlushingRecorder;
  sqs: SQSClient;
  dynamodb: DynamoDBClient;
}

/**
 * Wires the adapters for one region. Lambda entry points call this once per container; it sets
 * the process's V8 flags first, so every entry point runs with them.
 */
export function createApp(config: PristineConfig): App {
  applyV8Flags();
  const dynamodb = dynamoClient(config.endpoints.dynamodb, config.awsRegion);
  const doc = documentClient(dynamodb);
  const sqs = sqsClient(config.endpoints.sqs, config.awsRegion);
  const repositories = dynamoRepositories(doc, config.tableName);
  const metrics = metricRecorder(repositories.metricSeries, {
    serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "pristine",
    // A Lambda writes its figures as each invocation ends; a long-lived process every second.
    ...(process.env.AWS_LAMBDA_FUNCTION_NAME ? {} : { flushEveryMs: 1000 }),
  });
  const ports: Ports = {
    ...repositories,
    jobs: sqsJobQueue(sqs, config.cloneJobsQueueUrl, config.datastoreQueueUrls),
    events: config.eventBusName
      ? eventBridgeBus(config.eventBusName, config.awsRegion)
      : config.logoffQueueUrl
        ? queueBus(sqs, config.logoffQueueUrl)
        : noBus,
    // Registered datastores' folders come from the table; the default one from configuration.
    storage: qcow2Driver(config.storage, async (id) => (await repositories.datastores.get(id))?.path),
    clock: { now: () => new Date() },
    metrics,
    ...drPorts(config, sqs),
  };
  return { config, ports, metrics, sqs, dynamodb };
}

function drPorts(config: PristineConfig, sqs: SQSClient) {
  const dr = config.dr ?? { userDataPath: userDataPath("./.pristine"), userDataSizeBytes: 1024 ** 3 };
  const s3 = s3Client(config.endpoints.s3, config.awsRegion);
  const peer = dr.peer;
  const images = qcow2Paths(config.storage);
  return {
    userDataStore: qcow2UserDataStore(dr.userDataPath),
    userDataJobs: sqsUserDataJobQueue(sqs, dr.userDataQueueUrl),
    replication: sqsReplicationQueue(sqs, dr.replicationQueueUrl),
    peer: peer
      ? {
          ...s3PeerRegion({
            name: peer.name,
            bucket: peer.bucket,
            queueUrl: peer.replicationQueueUrl,
            // The peer may be reached through other endpoints than this region's own (locally: a fault proxy).
            ...(dr.transfer ? { transfer: dr.transfer } : {}),
            s3:
              peer.s3Endpoint || peer.awsRegion
                ? s3Client(peer.s3Endpoint, peer.awsRegion ?? config.awsRegion)
                : s3,
            sqs:
              peer.sqsEndpoint || peer.awsRegion
                ? sqsClient(peer.sqsEndpoint, peer.awsRegion ?? config.awsRegion)
                : sqs,
          }),
          fence: dynamoPeerFence({
            tableName: peer.tableName,
            endpoint: peer.dynamodbEndpoint ?? config.endpoints.dynamodb,
            awsRegion: peer.awsRegion ?? config.awsRegion,
          }),
        }
      : undefined,
    inbox: s3ReplicaInbox(s3, dr.replicationBucket ?? "", dr.transfer),
    region: {
      name: config.regionName,
      userDataSizeBytes: dr.userDataSizeBytes,
      imagePath: images.image,
      incomingImagePath: (v: Parameters<typeof images.image>[0]) => incomingImagePath(images.image(v)),
      installImage: (v: Parameters<typeof images.image>[0], file: string, sha256: string) =>
        installImageFile(images.image(v), file, sha256),
    },
  };
}

/** Where a region's workers place pools' growth, and the tenants' quotas unless set per tenant. */
export const regionDefaults = (app: Pick<App, "config">): RegionDefaults => ({
  defaultDatastore: app.config.defaultDatastore,
  quotas: app.config.quotas ?? defaultQuotas,
});
