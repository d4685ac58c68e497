/**
 * What the control plane needs from a hypervisor to run desktops as VMs. The first adapter is
 * QEMU over QMP (qemu.ts); libvirt, Proxmox and vSphere map onto the same calls (domain
 * start/shutdown/destroy, VNC ticket, screenshot, disk hot-plug, a guest-agent channel).
 *
 * The desktop agent inside the guest speaks line-delimited JSON over a channel named
 * `org.pristine.agent.0` (a virtio-serial port on QEMU/libvirt); `send`/`onMessage` carry those
 * messages and know nothing of their meaning (see AgentMessage for the protocol).
 */
import type { Duplex } from "node:stream";

export interface BootFiles {
  kernel: string;
  initrd: string;
  append?: string;
}

export interface VmSpec {
  /** Stable id of the VM; one VM per id at a time. Letters, digits, ".", "_" and "-". */
  vmId: string;
  /** The desktop's disk, typically a qcow2 linked clone whose backing file is the golden image. */
  diskPath: string;
  memoryMiB: number;
  cpus?: number;
  /** Direct kernel boot from host-side files; without it the VM boots its disk through firmware. */
  bootFiles?: BootFiles;
  /**
   * Also serve the screen as VNC over WebSocket (for a browser client such as noVNC): see
   * Connection.websocketPort.
   */
  websocket?: boolean;
}

export interface Connection {
  host: string;
  /** RFB (VNC) over TCP, password authentication (setConnectionPassword). */
  vncPort: number;
  /**
   * The same RFB stream over WebSocket (RFC 6455, binary frames, request path "/"), when the VM
   * was started with `websocket: true`; same password.
   */
  websocketPort?: number;
}

export interface VmInfo {
  vmId: string;
  diskPath: string;
  memoryMiB: number;
  cpus: number;
  connection: Connection;
  startedAt: Date;
  /** The host process running the VM, when the hypervisor has one per VM. */
  pid?: number;
}

export interface BlockInfo {
  /** The device's id in the VM (e.g. "vda", "disk-<diskId>"). */
  device: string;
  file: string;
  format?: string;
  backingFile?: string;
  readOnly: boolean;
}

export interface ExitInfo {
  /** True only when the VM ended because stop() was called. */
  expected: boolean;
  /**
   * stopped: stop() ended it; guest-shutdown: the guest powered itself off; killed: the process
   * died from a signal nobody here sent (kill -9, OOM killer); crashed: it exited on its own.
   */
  reason: "stopped" | "guest-shutdown" | "killed" | "crashed";
  exitCode: number | null;
  signal: string | null;
}

export interface AttachOptions {
  format?: "qcow2" | "raw";
  readOnly?: boolean;
}

export interface Hypervisor {
  /** Boots a VM. Idempotent: a VM already running with this id (and disk) is returned as is. */
  start(spec: VmSpec): Promise<VmInfo>;
  /**
   * Asks the guest to power off (ACPI), waits up to graceMs, then ends the VM outright.
   * Idempotent: stopping a VM that is not running does nothing. graceMs 0 skips the guest.
   */
  stop(vmId: string, opts?: { graceMs?: number }): Promise<void>;
  status(vmId: string): Promise<"running" | "stopped">;
  list(): Promise<VmInfo[]>;
  /**
   * Sets the VNC password (VNC authentication uses at most 8 characters; longer is refused),
   * replacing the previous one at once; expiresAt makes it stop working at that time.
   */
  setConnectionPassword(vmId: string, password: string, expiresAt?: Date): Promise<void>;
  /** The screen as PNG. */
  screenshot(vmId: string): Promise<Buffer>;
  /** Hot-plugs a disk as a virtio-blk device; the guest sees it as its next /dev/vdX. */
  attachDisk(vmId: string, diskId: string, path: string, opts?: AttachOptions): Promise<void>;
  /** Unplugs a disk once the guest has let go of it; idempotent. */
  detachDisk(vmId: string, diskId: string): Promise<void>;
  blockInfo(vmId: string): Promise<BlockInfo[]>;
  /** Sends one message to the desktop agent. */
  send(vmId: string, message: object): Promise<void>;
  onMessage(listener: (vmId: string, message: unknown) => void): () => void;
  /** A VM that ended, whatever the cause; see ExitInfo.expected. */
  onExit(listener: (vmId: string, info: ExitInfo) => void): () => void;
  /** The guest's serial console (one client at a time); end() it to let the next one in. */
  console(vmId: string): Promise<Duplex>;
  connection(vmId: string): Connection;
  /** Host memory the VM uses now (resident bytes of its process for QEMU). */
  memoryUsage(vmId: string): Promise<number>;
  /**
   * Stops every VM this instance runs, in parallel, each as stop() does (the guest powers off
   * within graceMs, else the VM is ended outright); VMs still starting are stopped once started.
   * For a graceful shutdown of the control process. Rejects with an AggregateError, after trying
   * every VM, if some could not be ended.
   */
  stopAll(opts?: { graceMs?: number }): Promise<void>;
  /** Why this host cannot run VMs (the hypervisor is missing or broken); undefined when it can. */
  problem(): Promise<string | undefined>;
  /**
   * Ends the VMs that an earlier control process left running (it crashed, or was upgraded
   * without stopping them) and clears what they left, so that each can be started again from a
   * clean state; answers their ids. Leaves alone the VMs this instance runs and those of another
   * control process that still runs. Call it when the control process starts, before start().
   * graceMs: how long each leftover has to exit cleanly before it is killed.
   */
  reclaim(opts?: { graceMs?: number }): Promise<string[]>;
}

/** Messages of the desktop agent protocol (org.pristine.agent.0), as the guest in guest/ speaks it. */
export type AgentMessage =
  // guest -> host
  | { type: "ready" }
  | { type: "heartbeat" }
  | { type: "assigned"; userId: string; sessionId: string }
  | { type: "user-data-mounted" }
  | { type: "user-data-released" }
  | { type: "logoff"; userId: string; sessionId: string }
  // the user's connection and input (relayed as Session Disconnected / Reconnected / Idle)
  | { type: "disconnected" }
  | { type: "reconnected" }
  | { type: "idle"; idleSeconds: number }
  | { type: "pong" }
  | { type: "error"; message: string }
  // host -> guest
  | { type: "assign"; userId: string; sessionId: string }
  | { type: "release" }
  | { type: "timeout-warning"; reason: string; logoffAt: string }
  | { type: "ping" };

export class VmNotRunningError extends Error {
  readonly vmId: string;
  constructor(vmId: string) {
    super(`VM ${vmId} is not running`);
    this.name = "VmNotRunningError";
    this.vmId = vmId;
  }
}
