/**
 * The host agent's wiring: its jobs (the same disk jobs as the clone worker, and the power jobs)
 * run with the host's VMs in their ports; the desktop agents' messages and the VMs' exits are
 * handled as they come; a heartbeat keeps the host's record fresh. It runs in a long-lived
 * process on the host (`local/agent.ts --workers host`, or in-process in `npm start`).
 */
import { freemem } from "node:os";
import { type App, regionDefaults } from "../app.ts";
import { runCloneJob } from "../domain/clone-jobs.ts";
import { onGuestMessage, onVmExit } from "../domain/desktop-vms.ts";
import { heartbeat, restoreDesktops } from "../domain/host-agent.ts";
import { logger } from "../logger.ts";
import { cloneJobSchema } from "../messages/clone-job.ts";
import type { HostRuntime, Ports } from "../ports/index.ts";
import { sqsWorker } from "./sqs-batch.ts";

export interface HostAgent {
  ports: Ports & { host: HostRuntime };
  /** The SQS handler of the host's queue (its datastores' disk and power jobs). */
  handler: ReturnType<typeof sqsWorker>;
  /** Stops heartbeating and every VM (a host that goes away). */
  stop(): Promise<void>;
}

export async function startHostAgent(
  app: App,
  host: HostRuntime,
  opts: { heartbeatMs?: number } = {},
): Promise<HostAgent> {
  const ports: Ports & { host: HostRuntime } = { ...app.ports, host };
  const ids = { hostId: host.hostId };
  const report = (what: string, vmId: string) => (outcome: string | undefined) => {
    if (outcome) logger.info(`host: ${what}: ${outcome}`, { ...ids, desktopId: vmId });
  };
  const fail = (what: string, vmId: string) => (err: Error) =>
    logger.error(`host: ${what} failed: ${err.message}`, { ...ids, desktopId: vmId });
  const unsubscribe = [
    host.hypervisor.onMessage(
      (vmId, message) =>
        void onGuestMessage(ports, vmId, message).then(report("guest", vmId), fail("guest message", vmId)),
    ),
    host.hypervisor.onExit(
      (vmId, info) =>
        void onVmExit(ports, vmId, info).then(report(`VM ${info.reason}`, vmId), fail("VM exit", vmId)),
    ),
  ];
  const startedAt = app.ports.clock.now().toISOString();
  const beat = async () => {
    const restored = await heartbeat(ports, { startedAt, freeMemoryBytes: freemem() });
    for (const failure of restored?.failed ?? []) logger.error(`host: desktop not restored: ${failure}`, ids);
    return restored;
  };
  const stopVms = async () => {
    for (const vm of host.running.values()) clearTimeout(vm.bootDeadline);
    host.running.clear();
    await host.hypervisor.stopAll({ graceMs: 5_000 });
  };
  try {
    // VMs an earlier agent process left running are ended: this agent starts its desktops cleanly.
    const reclaimed = await host.hypervisor.reclaim();
    // A host that was LATE restores its desktops with its first heartbeat.
    const restored = (await beat()) ?? (await restoreDesktops(ports));
    for (const failure of restored.failed) logger.error(`host: desktop not restored: ${failure}`, ids);
    logger.info("host agent up", {
      ...ids,
      ...restored,
      failed: restored.failed.length,
      reclaimed: reclaimed.length,
    });
  } catch (err) {
    for (const off of unsubscribe) off();
    await stopVms();
    throw err;
  }
  const timer = setInterval(
    () => void beat().catch((err: Error) => logger.warn(`host: heartbeat failed: ${err.message}`, ids)),
    opts.heartbeatMs ?? 5_000,
  );
  return {
    ports,
    handler: sqsWorker(
      "host-job",
      cloneJobSchema,
      (job, record) =>
        runCloneJob(
          ports,
          job,
          app.config.worker,
          Number(record.attributes.ApproximateReceiveCount),
          regionDefaults(app),
        ),
      { metrics: app.metrics },
    ),
    async stop() {
      clearInterval(timer);
      for (const off of unsubscribe) off();
      await stopVms();
    },
  };
}
