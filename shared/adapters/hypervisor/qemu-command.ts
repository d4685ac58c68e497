/**
 * A VM's QEMU command line and the files it names in the VM's run dir (<runDir>/<vmId>): unix
 * sockets for QMP, the serial console and the desktop agent, the pidfile and qemu.log.
 *
 * Machine "pc" (i440fx) because it hot-plugs PCI devices on its root bus through ACPI, which is
 * how a user's disk arrives; q35 would need a pcie-root-port per future disk.
 */
import { join } from "node:path";
import type { VmSpec } from "../../ports/hypervisor.ts";
import type { Accel } from "./accel.ts";

export interface QemuPaths {
  qmp: string;
  console: string;
  agent: string;
  pidfile: string;
  log: string;
  /** Which control process started the VM (see qemu-reclaim.ts); not QEMU's. */
  owner: string;
}

export const vmPaths = (dir: string): QemuPaths => ({
  qmp: join(dir, "qmp.sock"),
  console: join(dir, "console.sock"),
  agent: join(dir, "agent.sock"),
  pidfile: join(dir, "qemu.pid"),
  log: join(dir, "qemu.log"),
  owner: join(dir, "owner.json"),
});

/** Unix socket paths are limited to 107 bytes. */
export const maxSocketPath = 107;

/** QEMU's -vnc display numbers it may try, from 0: ports 5900-5999. */
const vncDisplays = 99;

/** A listener in QMP query-vnc-servers' answer. */
export interface VncServerInfo {
  host: string;
  service: string;
  family: string;
  websocket: boolean;
}

/** The ports QEMU's VNC server listens on, from query-vnc-servers (the first display, "default"). */
export function vncPorts(displays: { id?: string; server: VncServerInfo[] }[]): {
  vncPort: number;
  websocketPort?: number;
} {
  const servers = displays[0]?.server ?? [];
  const port = (websocket: boolean) => {
    const service = servers.find((s) => s.websocket === websocket)?.service;
    return service && /^\d+$/.test(service) ? Number(service) : undefined;
  };
  const vncPort = port(false);
  if (!vncPort) throw new Error(`no VNC listener in query-vnc-servers: ${JSON.stringify(displays)}`);
  const websocketPort = port(true);
  return websocketPort ? { vncPort, websocketPort } : { vncPort };
}

/** QEMU option values double their commas. */
const esc = (value: string) => value.replaceAll(",", ",,");

/** The qemu-system-x86_64 arguments for a VM. */
export function qemuArgs(opts: {
  spec: VmSpec;
  accel: Accel;
  paths: QemuPaths;
  vncHost: string;
  /** Also serve VNC over WebSocket, on a port QEMU picks from 5700-5799 (see vncPorts). */
  websocket?: boolean;
  sandbox: boolean;
  tcgCacheMiB: number;
}): string[] {
  const { spec, paths } = opts;
  const socket = (id: string, path: string) => [
    "-chardev",
    `socket,id=${id},path=${esc(path)},server=on,wait=off`,
  ];
  const vnc = [`${opts.vncHost}:0`, `to=${vncDisplays}`, "password=on"];
  // On the VNC host; QEMU tries 5700 upwards by itself, so no port is guessed free beforehand.
  if (opts.websocket) vnc.push("websocket=on");
  const args = [
    ...["-name", `pristine-${spec.vmId},debug-threads=on`],
    ...["-nodefaults", "-no-user-config", "-no-reboot", "-msg", "timestamp=on"],
    ...["-machine", "pc", "-accel", opts.accel === "tcg" ? `tcg,tb-size=${opts.tcgCacheMiB}` : "kvm"],
    ...(opts.accel === "kvm" ? ["-cpu", "host"] : []),
    ...["-m", String(spec.memoryMiB), "-smp", String(spec.cpus ?? 1)],
    // JSON syntax: the path needs no escaping. discard=unmap lets a guest trim give space back.
    "-blockdev",
    JSON.stringify({
      driver: "qcow2",
      "node-name": "root",
      discard: "unmap",
      file: { driver: "file", filename: spec.diskPath, discard: "unmap" },
    }),
    ...["-device", "virtio-blk-pci,drive=root,id=vda"],
    ...["-vga", "std", "-display", "none", "-vnc", vnc.join(",")],
    ...socket("serial0", paths.console),
    ...["-serial", "chardev:serial0"],
    ...["-device", "virtio-serial-pci,id=vser0"],
    ...socket("agent0", paths.agent),
    ...["-device", "virtserialport,bus=vser0.0,chardev=agent0,name=org.pristine.agent.0"],
    ...socket("qmp0", paths.qmp),
    ...["-mon", "chardev=qmp0,mode=control"],
    ...["-pidfile", paths.pidfile],
  ];
  if (spec.bootFiles) {
    args.push("-kernel", spec.bootFiles.kernel, "-initrd", spec.bootFiles.initrd);
    if (spec.bootFiles.append) args.push("-append", spec.bootFiles.append);
  }
  if (opts.sandbox)
    args.push("-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
  return args;
}
