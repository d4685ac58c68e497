/** Hypervisor hosts: their records, the VMs an agent runs, and what they send back. */
import type { Desktop, Host } from "../domain/model.ts";
import type { LogoffEvent } from "../messages/logoff-event.ts";
import type { SessionEvent } from "../messages/session-event.ts";
import type { BootFiles, Hypervisor } from "./hypervisor.ts";

export interface HostRepository {
  /** Records a heartbeat (the host is UP); answers the state it had before (LATE: it is back). */
  heartbeat(host: Omit<Host, "state">): Promise<Host["state"] | undefined>;
  get(hostId: string): Promise<Host | undefined>;
  list(): Promise<Host[]>;
  /** UP -> LATE, conditional on the heartbeat being the one the caller saw (a fresh one wins). */
  markLate(hostId: string, lastHeartbeatAt: string): Promise<boolean>;
}

/** Screens a host took for waiting requests (short-lived: they expire on their own). */
export interface ScreenshotRepository {
  put(tenantId: string, requestId: string, png: Buffer): Promise<void>;
  get(tenantId: string, requestId: string): Promise<Buffer | undefined>;
}

/** Where desktop agents' events go: EventBridge in AWS, the logoff queue locally. */
export interface EventBus {
  logoff(detail: LogoffEvent["detail"]): Promise<void>;
  /** A session's disconnect, reconnect or idle time, as its desktop agent reported it. */
  session(event: SessionEvent): Promise<void>;
}

/** What a host agent has that no other worker has: the VMs it runs. */
export interface HostRuntime {
  hostId: string;
  hypervisor: Hypervisor;
  /** The address users reach this host's VNC ports at. */
  address: string;
  /** Every desktop VM's size and how it boots. */
  vm: {
    memoryMiB: number;
    cpus?: number;
    bootFiles?: BootFiles;
    websocket?: boolean;
    bootTimeoutMs?: number;
  };
  /** Datastores whose desktops this host runs. */
  datastoreIds: string[];
  /** The VMs this agent runs, by id (the desktop's), with the disk generation each one boots. */
  running: Map<string, RunningDesktop>;
}

export type VmDesktop = Pick<Desktop, "tenantId" | "poolId" | "desktopId" | "datastoreId" | "generation">;

/** A desktop whose VM this agent started: the generation it boots, and its deadline to be ready. */
export type RunningDesktop = VmDesktop & {
  generation: number;
  bootDeadline?: ReturnType<typeof setTimeout>;
  /** When this agent started the VM (epoch ms): its boot time is published at Desktop Ready. */
  bootStartedAt?: number;
  /** The guest said it let go of the user's data (it does before a logoff typed inside). */
  userDataReleased?: boolean;
};
