/**
 * A worker as its own long-running process: the agent mode of a host with a host-local datastore
 * (docs/agent-mode.md), and the worker the fault tests kill. It reads its configuration from the
 * environment, as a Lambda function does, and polls the queues of the workers it is asked to run
 * with Lambda's batch semantics. SIGINT or SIGTERM stops it after its current batches.
 *
 *   node local/agent.ts --workers clone-worker[,user-data,replication,logoff]
 *   node local/agent.ts --workers host      (a hypervisor host: PRISTINE_HOST_ID, PRISTINE_HYPERVISOR=qemu)
 */

import { parseArgs } from "node:util";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { qemuHostRuntime } from "../shared/adapters/hypervisor/host-runtime.ts";
import { createApp } from "../shared/app.ts";
import { loadConfig } from "../shared/config.ts";
import { logger } from "../shared/logger.ts";
import { replicationWorkerHandler, userDataWorkerHandler } from "../shared/workers/dr-handlers.ts";
import { cloneWorkerHandler, logoffWorkerHandler } from "../shared/workers/handlers.ts";
import { type HostAgent, startHostAgent } from "../shared/workers/host-agent.ts";
import { type Poller, type PollerOptions, startSqsPoller } from "./sqs-poller.ts";

const { values } = parseArgs({
  options: {
    workers: { type: "string", default: "clone-worker" },
    concurrency: { type: "string", default: "2" },
  },
});

const app = createApp(loadConfig());
const config = app.config;
// A host polls its own datastore's queue (routed there by the producers).
const ownQueue = config.datastoreQueueUrls[config.defaultDatastore.datastoreId] ?? config.cloneJobsQueueUrl;
let hostAgent: HostAgent | undefined;
const queues = {
  "clone-worker": { url: app.config.cloneJobsQueueUrl, handler: () => cloneWorkerHandler(app), batchSize: 5 },
  logoff: { url: app.config.logoffQueueUrl, handler: () => logoffWorkerHandler(app), batchSize: 10 },
  "user-data": {
    url: app.config.dr?.userDataQueueUrl,
    handler: () => userDataWorkerHandler(app),
    batchSize: 2,
  },
  replication: {
    url: app.config.dr?.replicationQueueUrl,
    handler: () => replicationWorkerHandler(app),
    batchSize: 2,
  },
  host: {
    url: ownQueue,
    handler: () => {
      if (!hostAgent) throw new Error("a host agent needs PRISTINE_HOST_ID and PRISTINE_HYPERVISOR=qemu");
      return hostAgent.handler;
    },
    batchSize: 2,
  },
};
type Worker = keyof typeof queues;

const names = (values.workers ?? "").split(",").filter(Boolean);
const unknown = names.filter((n) => !(n in queues));
if (unknown.length > 0) {
  console.error(`unknown worker(s): ${unknown.join(", ")}; known: ${Object.keys(queues).join(", ")}`);
  process.exit(2);
}

const unconfigured = (names as Worker[]).filter((name) => !queues[name].url);
if (unconfigured.length > 0) {
  console.error(`no queue URL configured for ${unconfigured.join(", ")}`);
  process.exit(2);
}
// Only once the arguments hold: a host agent starts VMs.
if (names.includes("host") && config.host?.hypervisor === "qemu") {
  const runtime = qemuHostRuntime(config.host, [config.defaultDatastore.datastoreId], (line) =>
    logger.info(`qemu: ${line}`),
  );
  hostAgent = await startHostAgent(app, runtime);
}

const pollers: Poller[] = [];
for (const name of names as Worker[]) {
  const q = queues[name];
  if (!q.url) continue;
  const attrs = await app.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: q.url, AttributeNames: ["QueueArn"] }),
  );
  const options: PollerOptions = {
    sqs: app.sqs,
    queueUrl: q.url,
    queueArn: attrs.Attributes?.QueueArn ?? q.url,
    functionName: `${app.config.regionName}-agent-${name}`,
    handler: q.handler(),
    batchSize: q.batchSize,
    concurrency: Number(values.concurrency),
    retryDelaySeconds: 1,
  };
  pollers.push(startSqsPoller(options));
}
console.log(`agent up: ${names.join(", ")} (region ${app.config.regionName})`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await Promise.all(pollers.map((p) => p.stop()));
  await hostAgent?.stop();
  await app.metrics.close();
  app.sqs.destroy();
  console.log("agent stopped");
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
