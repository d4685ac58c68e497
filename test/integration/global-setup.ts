import type { TestProject } from "vitest/node";
import { startDynamoDbLocal, startFauxqsServer } from "../../local/emulators.ts";
import { preflight } from "../../local/preflight.ts";

declare module "vitest" {
  export interface ProvidedContext {
    dynamodbEndpoint: string;
    sqsEndpoint: string;
  }
}

/** One DynamoDB Local and one fauxqs for the whole run; each test file gets its own table and queues. */
export default async function setup(project: TestProject) {
  await preflight(console.log, { vms: true });
  const [dynamo, fauxqs] = await Promise.all([startDynamoDbLocal(), startFauxqsServer()]);
  project.provide("dynamodbEndpoint", dynamo.endpoint);
  project.provide("sqsEndpoint", fauxqs.endpoint);
  return async () => {
    await Promise.all([dynamo.stop(), fauxqs.stop()]);
  };
}
