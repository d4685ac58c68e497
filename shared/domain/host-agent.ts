/**
 * A host agent's own duties besides its jobs: it tells the control plane it is alive (a heartbeat
 * on its host record), and it makes its desktops' VMs match the table when it starts or comes
 * back from being late: free desktops are (re)started and handed out again once ready, and a
 * session whose VM is gone ends as `desktop-failure`.
 */

import { bootDesktop, type VmPorts } from "./desktop-vms.ts";
import type { Host } from "./model.ts";
import { logoff } from "./sessions.ts";

type HostPorts = VmPorts;

/** Records a heartbeat; when the host was LATE, its withdrawn desktops come back. */
export async function heartbeat(
  ports: HostPorts,
  figures: Pick<Host, "startedAt" | "freeMemoryBytes">,
): Promise<Host["state"] | undefined> {
  const problem = await ports.host.hypervisor.problem();
  const before = await ports.hosts.heartbeat({
    ...(problem ? { problem } : {}),
    hostId: ports.host.hostId,
    lastHeartbeatAt: ports.clock.now().toISOString(),
    runningVms: ports.host.running.size,
    datastoreIds: ports.host.datastoreIds,
    ...figures,
  });
  if (before === "LATE") await restoreDesktops(ports);
  return before;
}

/**
 * The host's desktops, as the table has them, get their VMs: a withdrawn or free desktop whose VM
 * runs is free again; any other is started (STARTING until its agent is ready); a session whose VM
 * is gone ends, and its desktop is rebuilt by the refresh that follows.
 */
export async function restoreDesktops(
  ports: HostPorts,
): Promise<{ started: number; restored: number; ended: number }> {
  const figures = { started: 0, restored: 0, ended: 0 };
  const desktops = await ports.desktops.listOnDatastores(ports.host.datastoreIds, [
    "STARTING",
    "AVAILABLE",
    "UNREACHABLE",
    "ASSIGNED",
  ]);
  for (const d of desktops) {
    const vm = ports.host.running.get(d.desktopId);
    const alive =
      vm?.generation === d.generation && (await ports.host.hypervisor.status(d.desktopId)) === "running";
    const fence = { generation: d.generation };
    if (d.state === "ASSIGNED") {
      if (alive || !d.sessionId) continue;
      await logoff(ports, d.tenantId, d.sessionId, "desktop-failure");
      figures.ended++;
    } else if (alive && d.state === "UNREACHABLE" && d.console) {
      if (await ports.desktops.transition(d, "UNREACHABLE", "AVAILABLE", {}, fence)) figures.restored++;
    } else if (!alive) {
      if (d.state !== "STARTING" && !(await ports.desktops.transition(d, d.state, "STARTING", {}, fence)))
        continue;
      await bootDesktop(ports, { ...d, generation: d.generation ?? 0 });
      figures.started++;
    }
  }
  return figures;
}
