/**
 * The Hypervisor port on plain QEMU: one qemu-system-x86_64 child process per VM, driven over
 * QMP. Each VM has a run dir (<runDir>/<vmId>, mode 700) holding its unix sockets (QMP, serial
 * console, desktop agent), pidfile and qemu.log. A VM outlives a control process that dies (setpriv
 * --pdeathsig did not survive Node's spawn in testing); its pidfile makes a later start() of the
 * same id refuse rather than run a second QEMU on the same disk, until reclaim() ends it.
 *
 * This module keeps the VMs by id and checks QEMU once; accel.ts picks the accelerator,
 * qemu-command.ts writes the command line, qemu-vm.ts runs one VM, qemu-disks.ts its disks,
 * qemu-reclaim.ts finds and ends the VMs an earlier control process left behind.
 */
import { execFile } from "node:child_process";
import { chmod, lstat, mkdir, rm, stat } from "node:fs/promises";
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
import { type Accel, detectAccel } from "./accel.ts";
import { selfIdentity } from "./host-process.ts";
import { maxSocketPath, type QemuPaths, qemuArgs, vmPaths } from "./qemu-command.ts";
import { assertDiskId } from "./qemu-disks.ts";
import { endLeftover, findLeftovers, runningQemu, writeOwner } from "./qemu-reclaim.ts";
import { assertVncPassword, QemuVm, type VmHooks, within } from "./qemu-vm.ts";

export { type Accel, chooseAccel, detectAccel } from "./accel.ts";
export { type QemuPaths, qemuArgs, vmPaths } from "./qemu-command.ts";

const exec = promisify(execFile);

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

const noop = () => {};
const vmIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Calls each listener; one that throws does not keep the others from hearing. */
function emit<A extends unknown[]>(listeners: Set<(...args: A) => void>, ...args: A) {
  for (const l of [...listeners]) {
    try {
      l(...args);
    } catch {
      // Listeners are independent.
    }
  }
}

export class QemuHypervisor implements Hypervisor {
  private readonly opts: Required<Omit<QemuOptions, "accel" | "log">> & Pick<QemuOptions, "accel" | "log">;
  private readonly vms = new Map<string, QemuVm>();
  private readonly starting = new Map<string, Promise<VmInfo>>();
  /** Leftovers of an earlier control process that reclaim() is ending; settle without failing. */
  private readonly reclaiming = new Map<string, Promise<void>>();
  private readonly messageListeners = new Set<(vmId: string, message: unknown) => void>();
  private readonly exitListeners = new Set<(vmId: string, info: ExitInfo) => void>();
  private readonly hooks: VmHooks;
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
    this.hooks = {
      message: (vmId, message) => emit(this.messageListeners, vmId, message),
      exited: (vm, info) => this.onExited(vm, info),
      ...(opts.log ? { log: opts.log } : {}),
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
      await privateRunDir(this.opts.runDir);
      this.opts.log?.(`qemu ${version.join(".")}, accel ${accel}`);
      return { version, accel };
    })();
    // A failed check is retried on the next call (e.g. after apt-get install).
    this.preflight.catch(() => {
      this.preflight = undefined;
    });
    return this.preflight;
  }

  async problem(): Promise<string | undefined> {
    try {
      await this.check();
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }

  private vm(vmId: string): QemuVm {
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
    const reclaimed = this.reclaiming.get(spec.vmId) ?? Promise.resolve();
    const starting = reclaimed.then(() => this.boot(spec)).finally(() => this.starting.delete(spec.vmId));
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
    if (Buffer.byteLength(paths.console) > maxSocketPath) {
      throw new Error(`run dir ${this.opts.runDir} is too long for unix socket paths; use a shorter runDir`);
    }
    await this.clearRunDir(spec.vmId, dir, paths);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeOwner(paths, await selfIdentity());

    const args = qemuArgs({
      spec,
      accel,
      paths,
      vncHost: this.opts.vncHost,
      websocket: spec.websocket ?? false,
      sandbox: this.opts.sandbox,
      tcgCacheMiB: this.opts.tcgCacheMiB,
    });
    const vm = await QemuVm.spawn({
      spec,
      dir,
      paths,
      binary: this.opts.binary,
      args,
      vncHost: this.opts.vncHost,
      startTimeoutMs: this.opts.startTimeoutMs,
      commandTimeoutMs: this.opts.commandTimeoutMs,
      unplugTimeoutMs: this.opts.unplugTimeoutMs,
      hooks: this.hooks,
    });
    this.vms.set(spec.vmId, vm);
    try {
      await vm.init(spec.websocket ?? false);
      const { vncPort, websocketPort } = vm.info.connection;
      this.opts.log?.(
        `VM ${spec.vmId}: pid ${vm.child.pid}, qemu ${version.join(".")} ${accel}, vnc ${vncPort}` +
          (websocketPort ? `, websocket ${websocketPort}` : ""),
      );
      return vm.info;
    } catch (err) {
      // A VM killed while it starts fails its init (its sockets close) a moment before its exit
      // is seen: that exit is reported as what it was, not as the stop below, which would make it
      // expected and leave its desktop STARTING until the boot deadline. One still running stops.
      await within(vm.exited, 1000);
      await this.stop(spec.vmId, { graceMs: 0 });
      throw err;
    }
  }

  /** A run dir left by an earlier process: refuse if its QEMU still runs, else start clean. */
  private async clearRunDir(vmId: string, dir: string, paths: QemuPaths) {
    const qemu = await runningQemu(paths, this.opts.binary);
    if (qemu) {
      throw new Error(
        `VM ${vmId} is already running as pid ${qemu.pid}, outside this control process (reclaim() ends it)`,
      );
    }
    await rm(dir, { recursive: true, force: true });
  }

  private onExited(vm: QemuVm, info: ExitInfo) {
    if (this.vms.get(vm.vmId) === vm) this.vms.delete(vm.vmId);
    this.opts.log?.(`VM ${vm.vmId} exited: ${info.reason} (code ${info.exitCode}, signal ${info.signal})`);
    // One listener's failure must not hide the exit from the others.
    emit(this.exitListeners, vm.vmId, info);
  }

  stop(vmId: string, opts: { graceMs?: number } = {}): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm) return Promise.resolve();
    return vm.stop(opts.graceMs ?? 20_000);
  }

  async status(vmId: string): Promise<"running" | "stopped"> {
    const vm = this.vms.get(vmId);
    return vm && !vm.gone ? "running" : "stopped";
  }

  async list(): Promise<VmInfo[]> {
    return [...this.vms.values()].filter((vm) => !vm.gone).map((vm) => vm.info);
  }

  async setConnectionPassword(vmId: string, password: string, expiresAt?: Date): Promise<void> {
    assertVncPassword(password);
    await this.vm(vmId).setPassword(password, expiresAt);
  }

  async screenshot(vmId: string): Promise<Buffer> {
    const vm = this.vm(vmId);
    const { version } = await this.check();
    if (version[0] < 7 || (version[0] === 7 && version[1] < 1)) {
      throw new Error(`PNG screendumps need QEMU 7.1 or later (this is ${version.join(".")})`);
    }
    return vm.screenshot();
  }

  async attachDisk(vmId: string, diskId: string, path: string, opts: AttachOptions = {}): Promise<void> {
    assertDiskId(diskId);
    await this.vm(vmId).disks.attach(vmId, diskId, path, opts);
  }

  async detachDisk(vmId: string, diskId: string): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm || vm.gone) return;
    await vm.disks.detach(diskId);
  }

  async blockInfo(vmId: string): Promise<BlockInfo[]> {
    return this.vm(vmId).disks.info();
  }

  async send(vmId: string, message: object): Promise<void> {
    await this.vm(vmId).send(message);
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
    return this.vm(vmId).console();
  }

  connection(vmId: string): Connection {
    return this.vm(vmId).info.connection;
  }

  async memoryUsage(vmId: string): Promise<number> {
    return this.vm(vmId).memoryUsage();
  }

  async stopAll(opts: { graceMs?: number } = {}): Promise<void> {
    // A start under way is let finish (or fail) first, so that its VM is not left running.
    await Promise.allSettled(this.starting.values());
    const ids = [...this.vms.keys()];
    const results = await Promise.allSettled(ids.map((id) => this.stop(id, opts)));
    const failed = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
    if (failed.length) throw new AggregateError(failed, `${failed.length} of ${ids.length} VMs did not stop`);
  }

  async reclaim(opts: { graceMs?: number } = {}): Promise<string[]> {
    const graceMs = opts.graceMs ?? 5000;
    const { leftovers, skipped } = await findLeftovers({
      runDir: this.opts.runDir,
      binary: this.opts.binary,
      self: await selfIdentity(),
      ours: (vmId) => this.vms.has(vmId) || this.starting.has(vmId) || this.reclaiming.has(vmId),
    });
    for (const { vmId, why } of skipped) this.opts.log?.(`VM ${vmId}: not reclaimed: ${why}`);
    const ended = await Promise.all(
      leftovers.map(async (leftover) => {
        const { vmId } = leftover;
        const ending = endLeftover(leftover, { graceMs });
        this.reclaiming.set(vmId, ending.then(noop, noop));
        try {
          const how = await ending;
          this.opts.log?.(`VM ${vmId}: reclaimed qemu pid ${leftover.qemu.pid} left running (${how})`);
          return [vmId];
        } catch (err) {
          // Its run dir stays: start() refuses the id while that QEMU runs, a later reclaim() retries.
          this.opts.log?.(
            `VM ${vmId}: could not end qemu pid ${leftover.qemu.pid}: ${(err as Error).message}`,
          );
          return [];
        } finally {
          this.reclaiming.delete(vmId);
        }
      }),
    );
    return ended.flat();
  }
}

/**
 * The run dir holds the VMs' QMP and agent sockets (their VNC passwords, their guests' voices): it
 * must be ours alone. One made by another user (it may be in /tmp) is refused, not used.
 */
async function privateRunDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await lstat(dir);
  const uid = process.getuid?.();
  if (!info.isDirectory() || (uid !== undefined && info.uid !== uid)) {
    throw new Error(`run dir ${dir} is not a directory of this user's; remove it or set PRISTINE_VM_RUN_DIR`);
  }
  if ((info.mode & 0o077) !== 0) await chmod(dir, 0o700);
}
