/**
 * A host agent's own duties besides its jobs: it tells the control plane it is alive (a heartbeat
 * on its host record), and it makes its desktops' VMs match the table when it starts or comes
 * back from being late: free desktops are (re)started and handed out again once ready, and a
 * session whose VM is gone ends as `desktop-failure`.
 */

import { desktopFreed } from "./common.ts";
import { bootDesktop, type VmPorts } from "./desktop-vms.ts";
import type { Desktop, Host } from "./model.ts";
import { logoff } from "./sessions.ts";

export interface Restored {
  started: number;
  restored: number;
  ended: number;
  /** Desktops whose VM could not be started or checked, with why: the others go on. */
  failed: string[];
}

/** Records a heartbeat; when the host was LATE, its withdrawn desktops come back. */
export async function heartbeat(
  ports: VmPorts,
  figures: Pick<Host, "startedAt" | "freeMemoryBytes">,
): Promise<Restored | undefined> {
  const problem = await ports.host.hypervisor.problem();
  const before = await ports.hosts.heartbeat({
    ...(problem ? { problem } : {}),
    hostId: ports.host.hostId,
    lastHeartbeatAt: ports.clock.now().toISOString(),
    runningVms: ports.host.running.size,
    datastoreIds: ports.host.datastoreIds,
    ...figures,
  });
  return before === "LATE" ? restoreDesktops(ports) : undefined;
}

/**
 * The host's desktops, as the table has them, get their VMs: a withdrawn or free desktop whose VM
 * runs is free again; any other is started (STARTING until its agent is ready); a session whose VM
 * is gone ends, and its desktop is rebuilt by the refresh that follows.
 */
export async function restoreDesktops(ports: VmPorts): Promise<Restored> {
  const figures: Restored = { started: 0, restored: 0, ended: 0, failed: [] };
  const desktops = await ports.desktops.listOnDatastores(ports.host.datastoreIds, [
    "STARTING",
    "AVAILABLE",
    "UNREACHABLE",
    "ASSIGNED",
  ]);
  for (const d of desktops) {
    try {
      await restoreDesktop(ports, d, figures);
    } catch (err) {
      figures.failed.push(`${d.desktopId}: ${(err as Error).message}`);
    }
  }
  return figures;
}

async function restoreDesktop(ports: VmPorts, d: Desktop, figures: Restored): Promise<void> {
  const vm = ports.host.running.get(d.desktopId);
  const alive =
    vm?.generation === d.generation && (await ports.host.hypervisor.status(d.desktopId)) === "running";
  const fence = { generation: d.generation };
  if (d.state === "ASSIGNED") {
    if (alive || !d.sessionId) return;
    await logoff(ports, d.tenantId, d.sessionId, "desktop-failure");
    figures.ended++;
  } else if (alive && d.state === "UNREACHABLE" && d.console) {
    if (await ports.desktops.transition(d, "UNREACHABLE", "AVAILABLE", {}, fence)) {
      figures.restored++;
      await desktopFreed(ports, d);
    }
  } else if (!alive) {
    if (d.state !== "STARTING" && !(await ports.desktops.transition(d, d.state, "STARTING", {}, fence)))
      return;
    await bootDesktop(ports, { ...d, generation: d.generation ?? 0 });
    figures.started++;
  }
}
