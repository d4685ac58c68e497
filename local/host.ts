/**
 * The local host: a host agent for the region's own datastore, in the `npm start` process, with
 * QEMU VMs (PRISTINE_HYPERVISOR=qemu). On AWS a host is a KVM machine running `local/agent.ts
 * --workers host`; here it polls its queue in-process, like the other workers.
 */
import type { SQSClient } from "@aws-sdk/client-sqs";
import { qemuHostRuntime } from "../shared/adapters/hypervisor/host-runtime.ts";
import type { App } from "../shared/app.ts";
import { logger } from "../shared/logger.ts";
import type { HostRuntime } from "../shared/ports/index.ts";
import { type HostAgent, startHostAgent } from "../shared/workers/host-agent.ts";
import type { QueueRef } from "./queues.ts";
import { type Poller, startSqsPoller } from "./sqs-poller.ts";

export interface LocalHost {
  runtime: HostRuntime;
  agent: HostAgent;
  queue: QueueRef;
  /** Stops the agent: no more heartbeats, jobs or VMs (a host that went away). */
  stop(): Promise<void>;
}

export async function startLocalHost(
  app: App,
  sqs: SQSClient,
  queue: QueueRef,
  opts: { functionName: string; heartbeatMs?: number; runtime?: HostRuntime },
): Promise<LocalHost> {
  const settings = app.config.host;
  if (!settings) throw new Error("the region has no host settings (PRISTINE_HYPERVISOR=qemu)");
  const runtime =
    opts.runtime ??
    qemuHostRuntime(settings, [app.config.defaultDatastore.datastoreId], (line) =>
      logger.info(`qemu: ${line}`),
    );
  const agent = await startHostAgent(app, runtime, opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {});
  const poller: Poller = startSqsPoller({
    sqs,
    queueUrl: queue.url,
    queueArn: queue.arn,
    functionName: opts.functionName,
    handler: agent.handler,
    // VMs boot for seconds under TCG: a few jobs at a time.
    batchSize: 2,
    // An agent is stopped and started again (maintenance, tests): no poll of its outlives it long.
    waitTimeSeconds: 1,
    concurrency: 4,
    retryDelaySeconds: 1,
  });
  return {
    runtime,
    agent,
    queue,
    async stop() {
      await poller.stop();
      await agent.stop();
    },
  };
}
