/**
 * A host's desktops as VMs (DESIGN.md §1, "With VMs"): a desktop is AVAILABLE only while its VM
 * runs and its desktop agent has said Desktop Ready. The host agent runs these steps: boot a
 * desktop's disk generation, hear its agent, prepare a session's connection, plug and unplug the
 * user's data disk, and repair a VM that died. The guest is trusted with nothing: the host fills
 * in tenant, desktop and session from its own records, so a guest only ever speaks for itself.
 */

import type { CloneJob } from "../messages/clone-job.ts";
import { type SessionEvent, sessionEvent } from "../messages/session-event.ts";
import type { HostRuntime, Ports, VmDesktop } from "../ports/index.ts";
import { commitLater, desktopFreed } from "./common.ts";
import type { UserDataRef } from "./dr-model.ts";
import { recordSince } from "./metrics.ts";
import type { Desktop } from "./model.ts";
import { requestSizing } from "./pool-sizing.ts";
import { logoff } from "./sessions.ts";

/** The ports that running desktops' VMs need besides the host itself. */
export type VmPortNames =
  | "desktops"
  | "logonQueue"
  | "metrics"
  | "pools"
  | "sessions"
  | "storage"
  | "jobs"
  | "clock"
  | "userData"
  | "userDataStore"
  | "userDataJobs"
  | "events"
  | "screenshots"
  | "hosts";

export type VmPorts = Pick<Ports, VmPortNames> & { host: HostRuntime };

type Job<K extends CloneJob["kind"]> = Extract<CloneJob, { kind: K }>;

const desktopOf = (ports: VmPorts, d: Pick<VmDesktop, "tenantId" | "poolId" | "desktopId">) =>
  ports.desktops.get(d.tenantId, d.poolId, d.desktopId);

/** Boots the VM of a desktop's disk generation; the desktop becomes AVAILABLE when it says ready. */
export async function bootDesktop(
  ports: VmPorts,
  desktop: VmDesktop & { generation: number },
): Promise<void> {
  const { hypervisor, vm } = ports.host;
  // A VM of an older generation (or a crashed one) gives way first.
  const known = ports.host.running.get(desktop.desktopId);
  clearTimeout(known?.bootDeadline);
  if (known && known.generation !== desktop.generation)
    await hypervisor.stop(desktop.desktopId, { graceMs: 0 });
  // A VM that never says it is ready (an image without the desktop agent, a guest that hangs) is
  // quarantined instead of STARTING for ever.
  const bootDeadline = setTimeout(
    () => void bootExpired(ports, desktop).catch(() => undefined),
    vm.bootTimeoutMs ?? defaultBootTimeoutMs,
  );
  bootDeadline.unref();
  ports.host.running.set(desktop.desktopId, {
    ...desktop,
    generation: desktop.generation,
    bootDeadline,
    bootStartedAt: ports.clock.now().getTime(),
  });
  await hypervisor.start({
    vmId: desktop.desktopId,
    diskPath: ports.storage.diskPath(desktop),
    memoryMiB: vm.memoryMiB,
    ...(vm.cpus ? { cpus: vm.cpus } : {}),
    ...(vm.bootFiles ? { bootFiles: vm.bootFiles } : {}),
    ...(vm.websocket ? { websocket: true } : {}),
  });
}

/** How long a VM may take from start to Desktop Ready (TCG boots take seconds, KVM less). */
export const defaultBootTimeoutMs = 180_000;

async function bootExpired(ports: VmPorts, desktop: VmDesktop & { generation: number }) {
  const now = await desktopOf(ports, desktop);
  if (now?.state !== "STARTING" || now.generation !== desktop.generation) return;
  await stopDesktop(ports, desktop.desktopId, 0);
  const seconds = (ports.host.vm.bootTimeoutMs ?? defaultBootTimeoutMs) / 1000;
  await ports.desktops.transition(
    now,
    "STARTING",
    "ERROR",
    {
      error: `its VM did not say Desktop Ready within ${seconds} s (does the image boot with the desktop agent?)`,
    },
    { generation: desktop.generation },
  );
}

/** The power job: the VM of a STARTING desktop's generation (a re-send of a lost one, too). */
export async function startDesktop(ports: VmPorts, job: Job<"start-desktop">): Promise<string> {
  const desktop = await desktopOf(ports, job);
  if (desktop?.state !== "STARTING" || desktop.generation !== job.generation)
    return `skipped: desktop is ${desktop?.state ?? "gone"}`;
  await bootDesktop(ports, { ...desktop, generation: job.generation });
  return `booting g${job.generation}`;
}

/**
 * The power job of a pool that keeps fewer VMs running: a free desktop leaves the free list first
 * (AVAILABLE -> STOPPED), so no logon gets it while its VM goes down. Its disk is kept.
 */
export async function powerOffFree(ports: VmPorts, job: Job<"stop-desktop">): Promise<string> {
  const desktop = await desktopOf(ports, job);
  if (desktop?.state !== "AVAILABLE" || desktop.generation !== job.generation)
    return `skipped: desktop is ${desktop?.state ?? "gone"}`;
  if (!(await ports.desktops.transition(desktop, "AVAILABLE", "STOPPED", {}, { generation: job.generation })))
    return "skipped: desktop moved";
  await stopDesktop(ports, desktop.desktopId);
  // The pool may need it again already (a logon took another one meanwhile).
  await requestSizing(ports, desktop.tenantId, desktop.poolId);
  return `powered off g${job.generation}`;
}

/** Stops a desktop's VM (its user is gone, or its disk is about to be replaced). */
export async function stopDesktop(ports: VmPorts, desktopId: string, graceMs = 5_000): Promise<void> {
  clearTimeout(ports.host.running.get(desktopId)?.bootDeadline);
  ports.host.running.delete(desktopId);
  await ports.host.hypervisor.stop(desktopId, { graceMs });
}

/** What a desktop agent said: ready, logoff and its session reports matter; heartbeats are not news. */
export async function onGuestMessage(
  ports: VmPorts,
  vmId: string,
  message: unknown,
): Promise<string | undefined> {
  const vm = ports.host.running.get(vmId);
  const type = (message as { type?: unknown })?.type;
  if (type === "heartbeat" || type === "pong") return undefined;
  if (!vm) return `ignored ${String(type)} from an unknown VM ${vmId}`;
  if (type === "ready") {
    const connection = ports.host.hypervisor.connection(vmId);
    const console = {
      host: ports.host.address,
      port: connection.vncPort,
      ...(connection.websocketPort ? { websocketPort: connection.websocketPort } : {}),
    };
    const moved = await ports.desktops.transition(
      vm,
      "STARTING",
      "AVAILABLE",
      { console },
      { generation: vm.generation },
    );
    // After the write: a failed one leaves the deadline to quarantine the desktop.
    clearTimeout(vm.bootDeadline);
    if (moved && vm.bootStartedAt) recordSince(ports, vm.tenantId, "bootSeconds", vm.bootStartedAt);
    if (moved && (await desktopFreed(ports, vm)))
      return `desktop ${vmId} ready; it follows its pool's recompose`;
    return moved ? `desktop ${vmId} ready` : `ready from ${vmId}, which is not STARTING at g${vm.generation}`;
  }
  if (type === "user-data-released" || type === "logoff") vm.userDataReleased = true;
  if (type === "assigned" || type === "user-data-mounted") vm.userDataReleased = false;
  if (type === "logoff" || type === "disconnected" || type === "reconnected" || type === "idle") {
    // The session is the one the desktop holds now, whatever the guest says.
    const desktop = await desktopOf(ports, vm);
    if (desktop?.state !== "ASSIGNED" || !desktop.sessionId)
      return `${type} from ${vmId}, which holds no session`;
    const detail = {
      tenantId: desktop.tenantId,
      sessionId: desktop.sessionId,
      desktopId: desktop.desktopId,
      at: ports.clock.now().toISOString(),
    };
    if (type === "logoff") await ports.events.logoff(detail);
    else await ports.events.session(sessionActivityEvent(type, detail, message));
    return `${type} of ${desktop.sessionId} relayed`;
  }
  return `${String(type)} from ${vmId}`;
}

/** A guest's disconnect, reconnect or idle report as the event the control plane hears. */
function sessionActivityEvent(
  type: "disconnected" | "reconnected" | "idle",
  detail: SessionEvent["detail"],
  message: unknown,
): SessionEvent {
  if (type === "disconnected") return sessionEvent("Session Disconnected", detail);
  if (type === "reconnected") return sessionEvent("Session Reconnected", detail);
  const reported = Number((message as { idleSeconds?: unknown }).idleSeconds);
  // The guest is trusted with nothing: a nonsense idle time counts as none.
  const idleSeconds = Number.isInteger(reported) && reported >= 0 && reported < 315_360_000 ? reported : 0;
  return sessionEvent("Session Idle", { ...detail, idleSeconds });
}

/**
 * A VM that died on its own: an ASSIGNED desktop's session ends (`desktop-failure`) and the
 * desktop is rebuilt by the refresh; a free one is started again, and out of the free list
 * meanwhile (AVAILABLE -> STARTING).
 */
export async function onVmExit(
  ports: VmPorts,
  vmId: string,
  exit: { expected: boolean; reason: string },
): Promise<string> {
  const vm = ports.host.running.get(vmId);
  if (exit.expected || !vm) return `VM ${vmId} stopped`;
  const desktop = await desktopOf(ports, vm);
  if (!desktop || desktop.generation !== vm.generation) return `VM ${vmId} of an old generation exited`;
  if (desktop.state === "STARTING") {
    // It never said ready: booting it again would only loop (a guest that panics, a broken image).
    clearTimeout(vm.bootDeadline);
    ports.host.running.delete(vmId);
    const error = `its VM exited before Desktop Ready (${exit.reason})`;
    await ports.desktops.transition(desktop, "STARTING", "ERROR", { error }, { generation: vm.generation });
    return `VM ${vmId} exited while starting: quarantined`;
  }
  if (desktop.state === "ASSIGNED" && desktop.sessionId) {
    ports.host.running.delete(vmId);
    await releaseUserData(ports, desktop, desktop.sessionId, { guestGone: true });
    await logoff(ports, desktop.tenantId, desktop.sessionId, "desktop-failure");
    return `VM ${vmId} died in session ${desktop.sessionId}: ended, desktop rebuilt`;
  }
  if (desktop.state === "AVAILABLE" || desktop.state === "UNREACHABLE") {
    if (
      await ports.desktops.transition(desktop, desktop.state, "STARTING", {}, { generation: vm.generation })
    )
      await bootDesktop(ports, { ...desktop, generation: vm.generation });
    return `VM ${vmId} died while free: restarted`;
  }
  return `VM ${vmId} exited while ${desktop.state}`;
}

/** The session's connection: its one-time password on the VM, its user on the screen. */
export async function connectSession(ports: VmPorts, job: Job<"connect-session">): Promise<string> {
  const desktop = await desktopOf(ports, job);
  if (desktop?.state !== "ASSIGNED" || desktop.sessionId !== job.sessionId)
    return `skipped: desktop no longer holds ${job.sessionId}`;
  await ports.host.hypervisor.setConnectionPassword(job.desktopId, job.password, new Date(job.expiresAt));
  await ports.host.hypervisor.send(job.desktopId, {
    type: "assign",
    userId: job.userId,
    sessionId: job.sessionId,
  });
  await ports.desktops.markConnected(desktop, job.sessionId);
  return `connection of ${job.sessionId} ready`;
}

/** The user's data disk, once attached, goes into the desktop's VM. */
export async function plugUserData(ports: VmPorts, job: Job<"plug-user-data">): Promise<string> {
  const desktop = await desktopOf(ports, job);
  if (desktop?.state !== "ASSIGNED" || desktop.sessionId !== job.sessionId)
    return `skipped: desktop no longer holds ${job.sessionId}`;
  const ref: UserDataRef = { tenantId: job.tenantId, userId: job.userId };
  if (!(await ports.userDataStore.hasOverlay(ref, job.sessionId)))
    return "skipped: the session has no data disk";
  await ports.userData.markPlugged(ref, job.sessionId, job.desktopId);
  await ports.host.hypervisor.attachDisk(
    job.desktopId,
    "userdata",
    ports.userDataStore.overlayPath(ref, job.sessionId),
    {
      format: "qcow2",
    },
  );
  return `user data of ${job.userId} plugged`;
}

/**
 * The user is gone: the guest lets go of the data disk (it syncs and unmounts), the disk leaves
 * the VM, and the session's commit, which waited for that, is sent again.
 */
async function releaseUserData(
  ports: VmPorts,
  desktop: Pick<Desktop, "tenantId" | "desktopId">,
  sessionId: string,
  opts: { guestGone: true } | { letGo: () => Promise<void> },
): Promise<void> {
  const session = await ports.sessions.get(desktop.tenantId, sessionId);
  if (!session) return;
  const ref: UserDataRef = { tenantId: session.tenantId, userId: session.userId };
  const record = await ports.userData.get(ref);
  if (record?.pluggedInto !== desktop.desktopId) return;
  if ("letGo" in opts) {
    // The guest syncs and unmounts first (it already has when the user typed logoff); a VM that
    // no longer runs has nothing to say.
    const vm = ports.host.running.get(desktop.desktopId);
    if (vm && !vm.userDataReleased) {
      const released = guestSays(ports, desktop.desktopId, "user-data-released", 10_000);
      await ports.host.hypervisor.send(desktop.desktopId, { type: "release" }).catch(() => undefined);
      await released;
    }
    // Then the disk goes with the whole VM: nothing can write it once QEMU is gone.
    await opts.letGo();
  }
  await ports.userData.markUnplugged(ref, desktop.desktopId);
  await commitLater(ports, session, "disk-released");
}

/**
 * A desktop's VM goes away: the last session's user data is let go of first (the guest syncs and
 * unmounts, then QEMU ends, so the commit that waited for it can run), then the VM is stopped.
 */
export async function powerOffDesktop(
  ports: VmPorts,
  desktop: Pick<Desktop, "tenantId" | "desktopId">,
  lastSessionId: string | undefined,
): Promise<void> {
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await stopDesktop(ports, desktop.desktopId, 0);
  };
  if (lastSessionId) await releaseUserData(ports, desktop, lastSessionId, { letGo: stop });
  await stop();
}

/** Resolves when the VM's agent sends a message of this type, or after `timeoutMs` (a gone guest says nothing). */
function guestSays(ports: VmPorts, vmId: string, type: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(false), timeoutMs);
    const stop = ports.host.hypervisor.onMessage((from, message) => {
      if (from === vmId && (message as { type?: unknown })?.type === type) done(true);
    });
    function done(heard: boolean) {
      clearTimeout(timer);
      stop();
      resolve(heard);
    }
  });
}

/** A timeout will log the session off: the desktop agent tells the user when and why. */
export async function warnSession(ports: VmPorts, job: Job<"warn-session">): Promise<string> {
  const desktop = await desktopOf(ports, job);
  if (desktop?.state !== "ASSIGNED" || desktop.sessionId !== job.sessionId)
    return `skipped: desktop no longer holds ${job.sessionId}`;
  await ports.host.hypervisor.send(job.desktopId, {
    type: "timeout-warning",
    reason: job.reason,
    logoffAt: job.logoffAt,
  });
  return `${job.sessionId} warned of its ${job.reason}`;
}

/** The desktop's screen, for a request that waits for it in the table. */
export async function takeScreenshot(ports: VmPorts, job: Job<"screenshot">): Promise<string> {
  const desktop = await desktopOf(ports, job);
  if (desktop?.state !== "ASSIGNED" || desktop.sessionId !== job.sessionId)
    return `skipped: desktop no longer holds ${job.sessionId}`;
  await ports.screenshots.put(
    job.tenantId,
    job.requestId,
    await ports.host.hypervisor.screenshot(job.desktopId),
  );
  return "screenshot taken";
}
