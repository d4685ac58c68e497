/**
 * One VM on QEMU, from spawn to exit: its qemu-system process, its QMP connection, its desktop
 * agent channel (reconnected while the VM runs), its disks, and the way it ends (ACPI power-off,
 * then QMP quit, then SIGKILL). The adapter (qemu.ts) keeps these by id and hears of each one's
 * exit through VmHooks; nothing here knows of other VMs.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import type { Socket } from "node:net";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import type { ExitInfo, VmInfo, VmSpec } from "../../ports/hypervisor.ts";
import { type QemuPaths, vncPorts } from "./qemu-command.ts";
import { QemuDisks } from "./qemu-disks.ts";
import { connectUnix, lineReader, QmpClient } from "./qmp.ts";

export interface VmHooks {
  /** A line of JSON from the desktop agent. */
  message(vmId: string, message: unknown): void;
  /** The VM ended and its sockets and pidfile are gone; the VM's `done` settles after this returns. */
  exited(vm: QemuVm, info: ExitInfo): void;
  log?: (line: string) => void;
}

export interface LaunchOptions {
  spec: VmSpec;
  dir: string;
  paths: QemuPaths;
  binary: string;
  args: string[];
  vncHost: string;
  /** How long QEMU may take to open its QMP socket. */
  startTimeoutMs: number;
  commandTimeoutMs: number;
  unplugTimeoutMs: number;
  hooks: VmHooks;
}

interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Resolves true if p settles within ms. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  const done = await Promise.race([p.then(() => true), timeout]);
  clearTimeout(timer);
  return done;
}

/** VNC authentication DES-encrypts with the first 8 bytes only: a longer password would be cut. */
export function assertVncPassword(password: string) {
  if (!password || Buffer.byteLength(password) > 8) throw new Error("a VNC password has 1 to 8 bytes");
}

export class QemuVm {
  readonly info: VmInfo;
  readonly dir: string;
  readonly paths: QemuPaths;
  readonly child: ChildProcess;
  readonly qmp: QmpClient;
  readonly disks: QemuDisks;
  /** Settles when the process has exited. */
  readonly exited: Promise<ExitInfo>;
  /** Settles once the exit is handled: sockets removed, the adapter told, the id free for a new start. */
  readonly done: Promise<void>;
  agent?: Socket;
  gone = false;
  stopRequested = false;
  private stopping?: Promise<void>;
  /** The reason of QEMU's SHUTDOWN event, if one came. */
  private shutdownReason?: string;
  private readonly hooks: VmHooks;
  private readonly commandTimeoutMs: number;

  /**
   * Spawns QEMU and connects to its QMP socket. The VM is not ready for use before init(); a QEMU
   * that does not answer QMP in time is killed, and the error carries the tail of its log.
   */
  static async spawn(opts: LaunchOptions): Promise<QemuVm> {
    const { spec, paths, hooks } = opts;
    const logFd = openSync(paths.log, "a");
    let child: ChildProcess;
    try {
      // Not the agent's environment: QEMU needs none of its settings, and none of its credentials.
      child = spawn(opts.binary, opts.args, {
        stdio: ["ignore", logFd, logFd],
        env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" },
      });
    } finally {
      closeSync(logFd);
    }
    const startedAt = new Date();
    let exit: ProcessExit | undefined;
    const processExited = new Promise<ProcessExit>((resolve) => {
      child.once("exit", (code, signal) => {
        exit = { code, signal };
        resolve(exit);
      });
      child.once("error", (err) => {
        exit = { code: null, signal: null };
        hooks.log?.(`VM ${spec.vmId}: ${err.message}`);
        resolve(exit);
      });
    });

    let qmp: QmpClient;
    try {
      qmp = await QmpClient.connect(paths.qmp, {
        timeoutMs: opts.startTimeoutMs,
        giveUp: () => (exit ? "QEMU exited" : undefined),
      });
    } catch (err) {
      child.kill("SIGKILL");
      await within(processExited, 5000);
      const log = await readFile(paths.log, "utf8").catch(() => "");
      const tail = log.trim().split("\n").slice(-5).join("\n  ");
      throw new Error(`VM ${spec.vmId} did not start: ${(err as Error).message}${tail ? `\n  ${tail}` : ""}`);
    }
    return new QemuVm(opts, child, qmp, startedAt, processExited);
  }

  private constructor(
    opts: LaunchOptions,
    child: ChildProcess,
    qmp: QmpClient,
    startedAt: Date,
    processExited: Promise<ProcessExit>,
  ) {
    const { spec } = opts;
    this.info = {
      vmId: spec.vmId,
      diskPath: spec.diskPath,
      memoryMiB: spec.memoryMiB,
      cpus: spec.cpus ?? 1,
      connection: { host: opts.vncHost, vncPort: 0 },
      startedAt,
      ...(child.pid ? { pid: child.pid } : {}),
    };
    this.dir = opts.dir;
    this.paths = opts.paths;
    this.child = child;
    this.qmp = qmp;
    this.hooks = opts.hooks;
    this.commandTimeoutMs = opts.commandTimeoutMs;
    this.disks = new QemuDisks(qmp, { commandMs: opts.commandTimeoutMs, unplugMs: opts.unplugTimeoutMs });
    this.exited = processExited.then((exit) => this.exitInfo(exit));
    this.done = this.exited.then((info) => this.onExited(info)).catch(() => {});
    qmp.onEvent((e) => {
      if (e.event === "SHUTDOWN") this.shutdownReason = String(e.data?.reason ?? "");
    });
  }

  get vmId(): string {
    return this.info.vmId;
  }

  /**
   * Reads the VNC ports QEMU chose back through QMP and connects the desktop agent's channel.
   * `websocket` says the VM was started with a WebSocket listener, which must then be there.
   */
  async init(websocket: boolean): Promise<void> {
    const displays = await this.qmp.execute<Parameters<typeof vncPorts>[0]>("query-vnc-servers", undefined, {
      timeoutMs: 10_000,
    });
    const ports = vncPorts(displays);
    if (websocket && !ports.websocketPort) {
      throw new Error(`VM ${this.vmId}: QEMU reports no VNC WebSocket listener: ${JSON.stringify(displays)}`);
    }
    Object.assign(this.info.connection, ports);
    await this.connectAgent();
  }

  private exitInfo(exit: ProcessExit): ExitInfo {
    const { code: exitCode, signal } = exit;
    let reason: ExitInfo["reason"];
    if (this.stopRequested) reason = "stopped";
    else if (signal) reason = "killed";
    else if (this.shutdownReason === "guest-shutdown") reason = "guest-shutdown";
    else reason = "crashed";
    return { expected: this.stopRequested, reason, exitCode, signal };
  }

  private async onExited(info: ExitInfo) {
    this.gone = true;
    this.qmp.close();
    this.agent?.destroy();
    // qemu.log stays for a post-mortem until the VM's next start. The adapter frees the id only
    // after this, so that a new VM of the same id never has its fresh sockets removed here.
    const p = this.paths;
    await Promise.all([p.qmp, p.console, p.agent, p.pidfile, p.owner].map((f) => rm(f, { force: true })));
    this.hooks.exited(this, info);
  }

  /**
   * Connects to the agent's chardev, and again whenever the link drops while the VM runs. QEMU
   * creates the socket before QMP answers, so the first connection is immediate.
   */
  private async connectAgent(): Promise<void> {
    const { vmId } = this;
    const socket = await connectUnix(this.paths.agent, Date.now() + 10_000, () =>
      this.gone ? "VM exited" : undefined,
    );
    if (this.gone) {
      socket.destroy();
      return;
    }
    this.agent = socket;
    socket.on(
      "data",
      lineReader((line) => {
        let message: unknown;
        try {
          message = JSON.parse(line);
        } catch {
          this.hooks.log?.(`VM ${vmId}: agent sent a line that is not JSON: ${line.slice(0, 200)}`);
          return;
        }
        this.hooks.message(vmId, message);
      }),
    );
    socket.on("error", () => {});
    socket.on("close", () => {
      if (this.agent === socket) this.agent = undefined;
      if (this.gone || this.stopRequested) return;
      setTimeout(() => {
        this.connectAgent().catch((err: Error) =>
          this.hooks.log?.(`VM ${vmId}: agent channel: ${err.message}`),
        );
      }, 100);
    });
  }

  /** Ends the VM (see Hypervisor.stop); settles once its exit is handled. */
  stop(graceMs: number): Promise<void> {
    if (this.gone) return this.done;
    this.stopping ??= this.shutdown(graceMs);
    return this.stopping;
  }

  private async shutdown(graceMs: number) {
    this.stopRequested = true;
    if (graceMs > 0) {
      // ACPI power button: the guest flushes and unmounts, then powers off.
      await this.qmp.execute("system_powerdown", undefined, { timeoutMs: 5000 }).catch(() => {});
      if (await within(this.done, graceMs)) return;
      this.hooks.log?.(`VM ${this.vmId}: no power-off within ${graceMs} ms, quitting`);
    }
    await this.qmp.execute("quit", undefined, { timeoutMs: 5000 }).catch(() => {});
    if (await within(this.done, 5000)) return;
    this.child.kill("SIGKILL");
    if (!(await within(this.done, 10_000))) {
      throw new Error(`VM ${this.vmId}: qemu pid ${this.child.pid} did not exit after SIGKILL`);
    }
  }

  async setPassword(password: string, expiresAt?: Date): Promise<void> {
    assertVncPassword(password);
    await this.qmp.execute("set_password", { protocol: "vnc", password });
    const time =
      expiresAt === undefined
        ? "never"
        : expiresAt.getTime() <= Date.now()
          ? "now"
          : String(Math.ceil(expiresAt.getTime() / 1000));
    await this.qmp.execute("expire_password", { protocol: "vnc", time });
  }

  /** The screen as PNG (QEMU 7.1 or later). */
  async screenshot(): Promise<Buffer> {
    const file = join(this.dir, `screen-${randomBytes(4).toString("hex")}.png`);
    try {
      await this.qmp.execute(
        "screendump",
        { filename: file, format: "png" },
        { timeoutMs: this.commandTimeoutMs },
      );
      return await readFile(file);
    } finally {
      await rm(file, { force: true });
    }
  }

  async send(message: object): Promise<void> {
    const { agent } = this;
    if (!agent) throw new Error(`VM ${this.vmId}: the desktop agent channel is not connected`);
    const line = `${JSON.stringify(message)}\n`;
    await new Promise<void>((resolve, reject) => agent.write(line, (err) => (err ? reject(err) : resolve())));
  }

  console(): Promise<Duplex> {
    return connectUnix(this.paths.console, Date.now() + 5000, () => (this.gone ? "VM exited" : undefined));
  }

  async memoryUsage(): Promise<number> {
    const { pid } = this.child;
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const kib = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    if (!kib) throw new Error(`VM ${this.vmId}: no VmRSS in /proc/${pid}/status`);
    return Number(kib) * 1024;
  }
}
