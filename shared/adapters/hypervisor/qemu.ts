/**
 * The Hypervisor port on plain QEMU: one qemu-system-x86_64 child process per VM, driven over
 * QMP. Each VM has a run dir (<runDir>/<vmId>, mode 700) holding its unix sockets (QMP, serial
 * console, desktop agent), pidfile and qemu.log. A VM outlives a control process that dies (setpriv
 * --pdeathsig did not survive Node's spawn in testing); its pidfile makes a later start() of the
 * same id refuse rather than run a second QEMU on the same disk.
 *
 * Acceleration: KVM only when /dev/kvm is usable and the CPU advertises vmx/svm, else TCG
 * (PRISTINE_QEMU_ACCEL=kvm|tcg overrides). Without vmx/svm a KVM guest does not boot, so /dev/kvm
 * alone is not enough.
 *
 * Machine "pc" (i440fx) because it hot-plugs PCI devices on its root bus through ACPI, which is
 * how a user's disk arrives; q35 would need a pcie-root-port per future disk.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, constants, openSync } from "node:fs";
import { access, mkdir, readFile, rm, stat } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { promisify } from "node:util";
import {
  type AttachOptions,
  type BlockInfo,
  type Connection,
  type ExitInfo,
  type Hypervisor,
  type VmInfo,
  VmNotRunningError,
  type VmSpec,
} from "../../ports/hypervisor.ts";
import { connectUnix, lineReader, QmpClient } from "./qmp.ts";

const exec = promisify(execFile);

export type Accel = "kvm" | "tcg";

/** KVM needs both a usable /dev/kvm and hardware virtualisation (vmx or svm in the CPU flags). */
export function chooseAccel(
  override: string | undefined,
  kvmDevice: boolean,
  cpuinfo: string,
): { accel: Accel; why: string } {
  if (override) {
    if (override !== "kvm" && override !== "tcg") {
      throw new Error(`PRISTINE_QEMU_ACCEL must be kvm or tcg, not ${JSON.stringify(override)}`);
    }
    return { accel: override, why: "PRISTINE_QEMU_ACCEL" };
  }
  const hw = /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
  if (kvmDevice && hw) return { accel: "kvm", why: "/dev/kvm is usable and the CPU has vmx/svm" };
  if (!kvmDevice) return { accel: "tcg", why: "/dev/kvm is missing or not accessible" };
  return { accel: "tcg", why: "the CPU has no vmx/svm flag (nested virtualisation is off)" };
}

export async function detectAccel(env = process.env): Promise<{ accel: Accel; why: string }> {
  const kvmDevice = await access("/dev/kvm", constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  return chooseAccel(env.PRISTINE_QEMU_ACCEL || undefined, kvmDevice, cpuinfo);
}

export interface QemuOptions {
  /** Parent of the per-VM run dirs; keep it short, unix socket paths are limited to 107 bytes. */
  runDir: string;
  binary?: string;
  /** Default: detectAccel(). */
  accel?: Accel;
  /** Address VNC listens on (default 127.0.0.1: a proxy or tunnel exposes it). */
  vncHost?: string;
  /** How long QEMU may take to open its QMP socket (default 15 s). */
  startTimeoutMs?: number;
  /** Deadline of each QMP command (default 30 s). */
  commandTimeoutMs?: number;
  /** How long a hot-unplug may wait for the guest to release the device (default 30 s). */
  unplugTimeoutMs?: number;
  /** QEMU's seccomp sandbox (default true). */
  sandbox?: boolean;
  /**
   * TCG's translated-code cache. QEMU's default (up to 1 GiB, on transparent huge pages) let a
   * 128 MiB guest reach ~240 MiB host RSS after boot; 32 MiB gave ~208 MiB at the same boot time.
   */
  tcgCacheMiB?: number;
  log?: (line: string) => void;
}

interface RunningVm {
  info: VmInfo;
  dir: string;
  child: ChildProcess;
  qmp: QmpClient;
  agent?: Socket;
  /** Settles when the process has exited. */
  exited: Promise<ExitInfo>;
  /** Settles once the exit is handled: sockets removed, listeners told, id free for a new start. */
  done: Promise<void>;
  gone: boolean;
  stopRequested: boolean;
  stopping?: Promise<void>;
  /** The reason of QEMU's SHUTDOWN event, if one came. */
  shutdownReason?: string;
  disks: Map<string, string>;
}

const vmIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const diskIdPattern = /^[A-Za-z][A-Za-z0-9_-]{0,23}$/;
/** QEMU's -vnc display numbers it may try, from 0: ports 5900-5999. */
const vncDisplays = 99;

/** QEMU option values double their commas. */
const esc = (value: string) => value.replaceAll(",", ",,");

/** Resolves true if p settles within ms. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  const done = await Promise.race([p.then(() => true), timeout]);
  clearTimeout(timer);
  return done;
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no free port")),
      );
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface QemuPaths {
  qmp: string;
  console: string;
  agent: string;
  pidfile: string;
  log: string;
}

export const vmPaths = (dir: string): QemuPaths => ({
  qmp: join(dir, "qmp.sock"),
  console: join(dir, "console.sock"),
  agent: join(dir, "agent.sock"),
  pidfile: join(dir, "qemu.pid"),
  log: join(dir, "qemu.log"),
});

/** The qemu-system-x86_64 arguments for a VM. */
export function qemuArgs(opts: {
  spec: VmSpec;
  accel: Accel;
  paths: QemuPaths;
  vncHost: string;
  websocketPort?: number;
  sandbox: boolean;
  tcgCacheMiB: number;
}): string[] {
  const { spec, paths } = opts;
  const socket = (id: string, path: string) => [
    "-chardev",
    `socket,id=${id},path=${esc(path)},server=on,wait=off`,
  ];
  const vnc = [`${opts.vncHost}:0`, `to=${vncDisplays}`, "password=on"];
  if (opts.websocketPort) vnc.push(`websocket=${opts.vncHost}:${opts.websocketPort}`);
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

interface QueryBlock {
  device: string;
  qdev?: string;
  inserted?: {
    file: string;
    drv: string;
    ro: boolean;
    backing_file?: string;
    image?: { "full-backing-filename"?: string; "backing-filename"?: string };
  };
}

export class QemuHypervisor implements Hypervisor {
  private readonly opts: Required<Omit<QemuOptions, "accel" | "log">> & Pick<QemuOptions, "accel" | "log">;
  private readonly vms = new Map<string, RunningVm>();
  private readonly starting = new Map<string, Promise<VmInfo>>();
  private readonly messageListeners = new Set<(vmId: string, message: unknown) => void>();
  private readonly exitListeners = new Set<(vmId: string, info: ExitInfo) => void>();
  private preflight?: Promise<{ version: [number, number]; accel: Accel }>;

  constructor(opts: QemuOptions) {
    this.opts = {
      runDir: opts.runDir,
      binary: opts.binary ?? "qemu-system-x86_64",
      vncHost: opts.vncHost ?? "127.0.0.1",
      startTimeoutMs: opts.startTimeoutMs ?? 15_000,
      commandTimeoutMs: opts.commandTimeoutMs ?? 30_000,
      unplugTimeoutMs: opts.unplugTimeoutMs ?? 30_000,
      sandbox: opts.sandbox ?? true,
      tcgCacheMiB: opts.tcgCacheMiB ?? 32,
      accel: opts.accel,
      log: opts.log,
    };
  }

  /** Checks once that QEMU is there (a clear error, not a hang) and picks the accelerator. */
  private check() {
    this.preflight ??= (async () => {
      const { binary } = this.opts;
      let out: string;
      try {
        out = (await exec(binary, ["--version"], { timeout: 10_000 })).stdout;
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === "ENOENT") {
          throw new Error(
            `${binary} is not installed: on Debian/Ubuntu apt-get install qemu-system-x86 (and qemu-utils)`,
          );
        }
        throw new Error(`${binary} --version failed: ${e.message}`);
      }
      const m = /version (\d+)\.(\d+)/.exec(out);
      const version: [number, number] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
      const accel = this.opts.accel ?? (await detectAccel()).accel;
      this.opts.log?.(`qemu ${version.join(".")}, accel ${accel}`);
      return { version, accel };
    })();
    // A failed check is retried on the next call (e.g. after apt-get install).
    this.preflight.catch(() => {
      this.preflight = undefined;
    });
    return this.preflight;
  }

  private vm(vmId: string): RunningVm {
    const vm = this.vms.get(vmId);
    if (!vm || vm.gone) throw new VmNotRunningError(vmId);
    return vm;
  }

  async start(spec: VmSpec): Promise<VmInfo> {
    if (!vmIdPattern.test(spec.vmId)) throw new Error(`invalid vmId ${JSON.stringify(spec.vmId)}`);
    if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 32)
      throw new Error("memoryMiB: an integer >= 32");
    if (spec.cpus !== undefined && !(Number.isInteger(spec.cpus) && spec.cpus >= 1)) {
      throw new Error("cpus: an integer >= 1");
    }
    const existing = this.vms.get(spec.vmId);
    if (existing && !existing.stopRequested && !existing.gone) {
      if (existing.info.diskPath !== spec.diskPath) {
        throw new Error(`VM ${spec.vmId} is already running on another disk (${existing.info.diskPath})`);
      }
      return existing.info;
    }
    if (existing) await existing.done;
    const pending = this.starting.get(spec.vmId);
    if (pending) return pending;
    const starting = this.boot(spec).finally(() => this.starting.delete(spec.vmId));
    this.starting.set(spec.vmId, starting);
    return starting;
  }

  private async boot(spec: VmSpec): Promise<VmInfo> {
    const { version, accel } = await this.check();
    for (const [what, path] of [
      ["disk", spec.diskPath],
      ["kernel", spec.bootFiles?.kernel],
      ["initrd", spec.bootFiles?.initrd],
    ] as const) {
      if (path && !(await stat(path).catch(() => undefined))?.isFile()) {
        throw new Error(`VM ${spec.vmId}: ${what} ${path} does not exist`);
      }
    }
    const dir = join(this.opts.runDir, spec.vmId);
    const paths = vmPaths(dir);
    if (Buffer.byteLength(paths.console) > 107) {
      throw new Error(`run dir ${this.opts.runDir} is too long for unix socket paths; use a shorter runDir`);
    }
    await this.reclaimRunDir(spec.vmId, dir, paths);
    await mkdir(dir, { recursive: true, mode: 0o700 });

    const websocketPort = spec.websocket ? await freePort(this.opts.vncHost) : undefined;
    const args = qemuArgs({
      spec,
      accel,
      paths,
      vncHost: this.opts.vncHost,
      websocketPort,
      sandbox: this.opts.sandbox,
      tcgCacheMiB: this.opts.tcgCacheMiB,
    });
    const logFd = openSync(paths.log, "a");
    let child: ChildProcess;
    try {
      child = spawn(this.opts.binary, args, { stdio: ["ignore", logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    const startedAt = new Date();
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    const processExited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        exit = { code, signal };
        resolve();
      });
      child.once("error", (err) => {
        exit = { code: null, signal: null };
        this.opts.log?.(`VM ${spec.vmId}: ${err.message}`);
        resolve();
      });
    });

    let qmp: QmpClient;
    try {
      qmp = await QmpClient.connect(paths.qmp, {
        timeoutMs: this.opts.startTimeoutMs,
        giveUp: () => (exit ? "QEMU exited" : undefined),
      });
    } catch (err) {
      child.kill("SIGKILL");
      await within(processExited, 5000);
      const log = await readFile(paths.log, "utf8").catch(() => "");
      const tail = log.trim().split("\n").slice(-5).join("\n  ");
      throw new Error(`VM ${spec.vmId} did not start: ${(err as Error).message}${tail ? `\n  ${tail}` : ""}`);
    }

    const vm: RunningVm = {
      info: {
        vmId: spec.vmId,
        diskPath: spec.diskPath,
        memoryMiB: spec.memoryMiB,
        cpus: spec.cpus ?? 1,
        connection: { host: this.opts.vncHost, vncPort: 0, ...(websocketPort ? { websocketPort } : {}) },
        startedAt,
        ...(child.pid ? { pid: child.pid } : {}),
      },
      dir,
      child,
      qmp,
      stopRequested: false,
      gone: false,
      disks: new Map(),
      exited: processExited.then(() => this.exitInfo(vm, exit)),
      done: Promise.resolve(),
    };
    vm.done = vm.exited.then((info) => this.onExited(vm, info)).catch(() => {});
    qmp.onEvent((e) => {
      if (e.event === "SHUTDOWN") vm.shutdownReason = String(e.data?.reason ?? "");
    });
    this.vms.set(spec.vmId, vm);

    try {
      const vnc = await qmp.execute<{ service?: string }>("query-vnc", undefined, { timeoutMs: 10_000 });
      vm.info.connection.vncPort = Number(vnc.service);
      await this.connectAgent(vm);
      this.opts.log?.(
        `VM ${spec.vmId}: pid ${child.pid}, qemu ${version.join(".")} ${accel}, vnc ${vnc.service}`,
      );
      return vm.info;
    } catch (err) {
      await this.stop(spec.vmId, { graceMs: 0 });
      throw err;
    }
  }

  /** A run dir left by an earlier process: refuse if its QEMU still runs, else start clean. */
  private async reclaimRunDir(vmId: string, dir: string, paths: QemuPaths) {
    const pid = Number((await readFile(paths.pidfile, "utf8").catch(() => "")).trim());
    if (pid > 0 && alive(pid)) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
      if (cmdline.includes(dir)) {
        throw new Error(`VM ${vmId} is already running as pid ${pid}, outside this control process`);
      }
    }
    await rm(dir, { recursive: true, force: true });
  }

  private exitInfo(vm: RunningVm, exit?: { code: number | null; signal: NodeJS.Signals | null }): ExitInfo {
    const exitCode = exit?.code ?? null;
    const signal = exit?.signal ?? null;
    let reason: ExitInfo["reason"];
    if (vm.stopRequested) reason = "stopped";
    else if (signal) reason = "killed";
    else if (vm.shutdownReason === "guest-shutdown") reason = "guest-shutdown";
    else reason = "crashed";
    return { expected: vm.stopRequested, reason, exitCode, signal };
  }

  private async onExited(vm: RunningVm, info: ExitInfo) {
    vm.gone = true;
    vm.qmp.close();
    vm.agent?.destroy();
    // qemu.log stays for a post-mortem until the VM's next start. The id is freed only after
    // this, so that a new VM of the same id never has its fresh sockets removed here.
    const p = vmPaths(vm.dir);
    await Promise.all([p.qmp, p.console, p.agent, p.pidfile].map((f) => rm(f, { force: true })));
    if (this.vms.get(vm.info.vmId) === vm) this.vms.delete(vm.info.vmId);
    this.opts.log?.(
      `VM ${vm.info.vmId} exited: ${info.reason} (code ${info.exitCode}, signal ${info.signal})`,
    );
    for (const l of [...this.exitListeners]) {
      try {
        l(vm.info.vmId, info);
      } catch {
        // One listener's failure must not hide the exit from the others.
      }
    }
  }

  /**
   * Connects to the agent's chardev, and again whenever the link drops while the VM runs. QEMU
   * creates the socket before QMP answers, so the first connection is immediate.
   */
  private async connectAgent(vm: RunningVm): Promise<void> {
    const vmId = vm.info.vmId;
    const socket = await connectUnix(vmPaths(vm.dir).agent, Date.now() + 10_000, () =>
      this.vms.get(vmId) === vm ? undefined : "VM exited",
    );
    if (this.vms.get(vmId) !== vm) {
      socket.destroy();
      return;
    }
    vm.agent = socket;
    socket.on(
      "data",
      lineReader((line) => {
        let message: unknown;
        try {
          message = JSON.parse(line);
        } catch {
          this.opts.log?.(`VM ${vmId}: agent sent a line that is not JSON: ${line.slice(0, 200)}`);
          return;
        }
        for (const l of [...this.messageListeners]) {
          try {
            l(vmId, message);
          } catch {
            // Listeners are independent.
          }
        }
      }),
    );
    socket.on("error", () => {});
    socket.on("close", () => {
      if (vm.agent === socket) vm.agent = undefined;
      if (this.vms.get(vmId) !== vm || vm.stopRequested) return;
      setTimeout(() => {
        this.connectAgent(vm).catch((err: Error) =>
          this.opts.log?.(`VM ${vmId}: agent channel: ${err.message}`),
        );
      }, 100);
    });
  }

  stop(vmId: string, opts: { graceMs?: number } = {}): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm) return Promise.resolve();
    if (vm.gone) return vm.done;
    vm.stopping ??= this.shutdown(vm, opts.graceMs ?? 20_000);
    return vm.stopping;
  }

  private async shutdown(vm: RunningVm, graceMs: number) {
    vm.stopRequested = true;
    if (graceMs > 0) {
      // ACPI power button: the guest flushes and unmounts, then powers off.
      await vm.qmp.execute("system_powerdown", undefined, { timeoutMs: 5000 }).catch(() => {});
      if (await within(vm.done, graceMs)) return;
      this.opts.log?.(`VM ${vm.info.vmId}: no power-off within ${graceMs} ms, quitting`);
    }
    await vm.qmp.execute("quit", undefined, { timeoutMs: 5000 }).catch(() => {});
    if (await within(vm.done, 5000)) return;
    vm.child.kill("SIGKILL");
    if (!(await within(vm.done, 10_000))) {
      throw new Error(`VM ${vm.info.vmId}: qemu pid ${vm.child.pid} did not exit after SIGKILL`);
    }
  }

  async status(vmId: string): Promise<"running" | "stopped"> {
    const vm = this.vms.get(vmId);
    return vm && !vm.gone ? "running" : "stopped";
  }

  async list(): Promise<VmInfo[]> {
    return [...this.vms.values()].filter((vm) => !vm.gone).map((vm) => vm.info);
  }

  async setConnectionPassword(vmId: string, password: string, expiresAt?: Date): Promise<void> {
    // VNC authentication DES-encrypts with the first 8 bytes only: a longer password would be cut.
    if (!password || Buffer.byteLength(password) > 8) {
      throw new Error("a VNC password has 1 to 8 bytes");
    }
    const { qmp } = this.vm(vmId);
    await qmp.execute("set_password", { protocol: "vnc", password });
    const time =
      expiresAt === undefined
        ? "never"
        : expiresAt.getTime() <= Date.now()
          ? "now"
          : String(Math.ceil(expiresAt.getTime() / 1000));
    await qmp.execute("expire_password", { protocol: "vnc", time });
  }

  async screenshot(vmId: string): Promise<Buffer> {
    const vm = this.vm(vmId);
    const { version } = await this.check();
    if (version[0] < 7 || (version[0] === 7 && version[1] < 1)) {
      throw new Error(`PNG screendumps need QEMU 7.1 or later (this is ${version.join(".")})`);
    }
    const file = join(vm.dir, `screen-${randomBytes(4).toString("hex")}.png`);
    try {
      await vm.qmp.execute(
        "screendump",
        { filename: file, format: "png" },
        { timeoutMs: this.opts.commandTimeoutMs },
      );
      return await readFile(file);
    } finally {
      await rm(file, { force: true });
    }
  }

  async attachDisk(vmId: string, diskId: string, path: string, opts: AttachOptions = {}): Promise<void> {
    if (!diskIdPattern.test(diskId)) throw new Error(`invalid diskId ${JSON.stringify(diskId)}`);
    const vm = this.vm(vmId);
    const attached = vm.disks.get(diskId);
    if (attached === path) return;
    if (attached) throw new Error(`VM ${vmId} already has a disk ${diskId} (${attached})`);
    if (!(await stat(path).catch(() => undefined))?.isFile()) throw new Error(`disk ${path} does not exist`);
    const node = `node-${diskId}`;
    const readOnly = opts.readOnly ?? false;
    const timeoutMs = this.opts.commandTimeoutMs;
    // QEMU takes a write lock on the image: a user disk already open in another VM is refused here.
    await vm.qmp.execute(
      "blockdev-add",
      {
        driver: opts.format ?? "qcow2",
        "node-name": node,
        "read-only": readOnly,
        discard: "unmap",
        file: { driver: "file", filename: path, "read-only": readOnly },
      },
      { timeoutMs },
    );
    try {
      await vm.qmp.execute(
        "device_add",
        { driver: "virtio-blk-pci", id: `disk-${diskId}`, drive: node },
        { timeoutMs },
      );
    } catch (err) {
      await vm.qmp.execute("blockdev-del", { "node-name": node }, { timeoutMs }).catch(() => {});
      throw err;
    }
    vm.disks.set(diskId, path);
  }

  async detachDisk(vmId: string, diskId: string): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm?.disks.has(diskId) || vm.gone) return;
    const id = `disk-${diskId}`;
    const timeoutMs = this.opts.commandTimeoutMs;
    // Unplugging needs the guest's consent (ACPI eject); DEVICE_DELETED says it happened.
    const deleted = vm.qmp.waitForEvent(
      (e) => e.event === "DEVICE_DELETED" && e.data?.device === id,
      this.opts.unplugTimeoutMs,
      `DEVICE_DELETED for ${id} (the guest did not release the disk)`,
    );
    try {
      await vm.qmp.execute("device_del", { id }, { timeoutMs });
      await deleted.promise;
    } catch (err) {
      deleted.cancel();
      // Already gone (an earlier detach that timed out while the guest was slow): just clean up.
      if (!/not found/i.test((err as Error).message)) throw err;
    }
    await vm.qmp.execute("blockdev-del", { "node-name": `node-${diskId}` }, { timeoutMs });
    vm.disks.delete(diskId);
  }

  async blockInfo(vmId: string): Promise<BlockInfo[]> {
    const devices = await this.vm(vmId).qmp.execute<QueryBlock[]>("query-block");
    return devices
      .filter((d) => d.inserted)
      .map((d) => {
        const inserted = d.inserted as NonNullable<QueryBlock["inserted"]>;
        // -blockdev drives have no legacy name; their device is the qdev id, or a QOM path to it.
        const device = d.device || /\/machine\/peripheral\/([^/]+)/.exec(d.qdev ?? "")?.[1] || d.qdev || "";
        const backingFile =
          inserted.image?.["full-backing-filename"] ??
          inserted.image?.["backing-filename"] ??
          inserted.backing_file;
        return {
          device,
          file: inserted.file,
          format: inserted.drv,
          readOnly: inserted.ro,
          ...(backingFile ? { backingFile } : {}),
        };
      });
  }

  async send(vmId: string, message: object): Promise<void> {
    const { agent } = this.vm(vmId);
    if (!agent) throw new Error(`VM ${vmId}: the desktop agent channel is not connected`);
    const line = `${JSON.stringify(message)}\n`;
    await new Promise<void>((resolve, reject) => agent.write(line, (err) => (err ? reject(err) : resolve())));
  }

  onMessage(listener: (vmId: string, message: unknown) => void): () => void {
    this.messageListeners.add(listener);
    return () => this.messageListeners.delete(listener);
  }

  onExit(listener: (vmId: string, info: ExitInfo) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  async console(vmId: string): Promise<Duplex> {
    const vm = this.vm(vmId);
    return connectUnix(vmPaths(vm.dir).console, Date.now() + 5000, () =>
      this.vms.get(vmId) === vm ? undefined : "VM exited",
    );
  }

  connection(vmId: string): Connection {
    return this.vm(vmId).info.connection;
  }

  async memoryUsage(vmId: string): Promise<number> {
    const { child } = this.vm(vmId);
    const status = await readFile(`/proc/${child.pid}/status`, "utf8");
    const kib = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    if (!kib) throw new Error(`VM ${vmId}: no VmRSS in /proc/${child.pid}/status`);
    return Number(kib) * 1024;
  }

  /** Stops every VM (e.g. on shutdown of the control process). */
  async stopAll(opts?: { graceMs?: number }): Promise<void> {
    await Promise.all([...this.vms.keys()].map((id) => this.stop(id, opts)));
  }
}
