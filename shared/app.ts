import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { documentClient, dynamoClient } from "./adapters/dynamodb/client.ts";
import { dynamoRepositories } from "./adapters/dynamodb/repositories.ts";
import { sqsClient, sqsJobQueue } from "./adapters/sqs/queue.ts";
import { qcow2Driver } from "./adapters/storage/qcow2-driver.ts";
import type { PristineConfig } from "./config.ts";
import type { Ports } from "./ports.ts";

export interface App {
  config: PristineConfig;
  ports: Ports;
  sqs: SQSClient;
  dynamodb: DynamoDBClient;
}

/** Wires the adapters for one region. Lambda entry points call this once per container. */
export function createApp(config: PristineConfig): App {
  const dynamodb = dynamoClient(config.endpoints.dynamodb, config.awsRegion);
  const doc = documentClient(dynamodb);
  const sqs = sqsClient(config.endpoints.sqs, config.awsRegion);
  const repositories = dynamoRepositories(doc, config.tableName);
  const ports: Ports = {
    ...repositories,
    jobs: sqsJobQueue(sqs, config.cloneJobsQueueUrl),
    // Registered datastores' folders come from the table; the default one from configuration.
    storage: qcow2Driver(config.storage, async (id) => (await repositories.datastores.get(id))?.path),
    clock: { now: () => new Date() },
  };
  return { config, ports, sqs, dynamodb };
}
