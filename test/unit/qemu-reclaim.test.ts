/**
 * Reclaiming VMs an earlier control process left running, without a VM: stand-in processes whose
 * command line looks like QEMU's (argv[0] qemu-system-x86_64, -pidfile <run dir>/qemu.pid) play
 * the leftovers, and others play the processes that must never be touched.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  isRunning,
  parseCmdline,
  parseProcStat,
  readProc,
  selfIdentity,
  terminate,
} from "../../shared/adapters/hypervisor/host-process.ts";
import { QemuHypervisor } from "../../shared/adapters/hypervisor/qemu.ts";
import { vmPaths } from "../../shared/adapters/hypervisor/qemu-command.ts";
import { isQemuFor, judge, writeOwner } from "../../shared/adapters/hypervisor/qemu-reclaim.ts";

describe("/proc", () => {
  it("reads state and start time after the last ')', whatever the command name holds", () => {
    const rest = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21";
    expect(parseProcStat(`4242 (qemu) x (y) ${rest}`)).toEqual({ state: "S", startTicks: 987654 });
    expect(parseProcStat(`7 (a b) ${rest.replace("S", "Z")}`)).toEqual({ state: "Z", startTicks: 987654 });
    expect(() => parseProcStat("garbage")).toThrow(/not a \/proc/);
  });

  it("splits a command line on NULs", () => {
    expect(parseCmdline("qemu-system-x86_64\0-pidfile\0/r/d1/qemu.pid\0")).toEqual([
      "qemu-system-x86_64",
      "-pidfile",
      "/r/d1/qemu.pid",
    ]);
  });

  it("knows this process, and no process under a pid that does not exist", async () => {
    const self = await selfIdentity();
    expect(self.pid).toBe(process.pid);
    expect(await isRunning(self)).toBe(true);
    // Same pid, another start time: an earlier process that had our number.
    expect(await isRunning({ pid: self.pid, startTicks: self.startTicks - 1 })).toBe(false);
    expect(await readProc(2 ** 22 + 1)).toBeUndefined();
  });
});

describe("which QEMU is a VM's", () => {
  const pidfile = "/run/p/d1/qemu.pid";

  it("a qemu-system process whose -pidfile is that run dir's, exactly", () => {
    expect(isQemuFor(["/usr/bin/qemu-system-x86_64", "-name", "x", "-pidfile", pidfile], pidfile)).toBe(true);
    expect(isQemuFor(["qemu-system-aarch64", "-pidfile", pidfile], pidfile)).toBe(true);
    // Another VM whose run dir only starts like this one's, or a pidfile named elsewhere.
    expect(isQemuFor(["qemu-system-x86_64", "-pidfile", "/run/p/d10/qemu.pid"], pidfile)).toBe(false);
    expect(isQemuFor(["qemu-system-x86_64", "-name", pidfile], pidfile)).toBe(false);
    // Not QEMU, even if it names the file (an editor, a shell, a pid taken over).
    expect(isQemuFor(["vi", "-pidfile", pidfile], pidfile)).toBe(false);
    expect(isQemuFor([], pidfile)).toBe(false);
    // The adapter's configured binary counts as QEMU too.
    expect(isQemuFor(["/opt/q/qemu-kvm", "-pidfile", pidfile], pidfile, "/opt/q/qemu-kvm")).toBe(true);
  });

  it("is reclaimed unless another control process that started it still runs", () => {
    const self = { pid: 100, startTicks: 5000 };
    expect(judge(undefined, false, self)).toEqual({ reclaim: true });
    expect(judge({ pid: 90, startTicks: 10 }, false, self)).toEqual({ reclaim: true });
    // An earlier adapter of this very process, dropped without stopping its VMs.
    expect(judge(self, true, self)).toEqual({ reclaim: true });
    expect(judge({ pid: 90, startTicks: 10 }, true, self)).toMatchObject({ reclaim: false, why: /pid 90/ });
  });
});

/** A process that looks like QEMU to /proc; with stubborn it ignores SIGTERM. */
const fakeQemuScript = (stubborn: boolean) =>
  `${stubborn ? "process.on('SIGTERM', () => {});" : ""} setInterval(() => {}, 1e9); console.log("ready");`;

describe("reclaim()", () => {
  let runDir: string;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    runDir = await mkdtemp(join(tmpdir(), "pristine-reclaim-"));
  });

  afterEach(async () => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
    await rm(runDir, { recursive: true, force: true });
  });

  /** Starts a process (argv0 sets what /proc/<pid>/cmdline shows first) and waits for it to be up. */
  async function startProcess(argv0: string, args: string[], stubborn = false) {
    const child = spawn(process.execPath, ["-e", fakeQemuScript(stubborn), "--", ...args], {
      argv0,
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(child);
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_c, s) => resolve(s)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${argv0} did not start within 5 s`)), 5000);
      child.stdout?.once("data", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    return { pid: child.pid as number, exited };
  }

  /** A run dir for vmId whose pidfile holds pid. */
  async function runDirOf(vmId: string, pid: number) {
    const paths = vmPaths(join(runDir, vmId));
    await mkdir(join(runDir, vmId), { mode: 0o700 });
    await writeFile(paths.pidfile, `${pid}\n`);
    return paths;
  }

  it("ends QEMUs left in runDir (SIGTERM, SIGKILL after the grace), removes their run dirs, and touches nothing else", async () => {
    const self = await selfIdentity();
    const pidfile = (vmId: string) => vmPaths(join(runDir, vmId)).pidfile;
    const qemu = "qemu-system-x86_64";

    // Left by a control process that wrote no owner (an older version).
    const left = await startProcess(qemu, ["-pidfile", pidfile("left")]);
    await runDirOf("left", left.pid);
    // Ignores SIGTERM; its owner had our pid but is an earlier process (another start time).
    const stubborn = await startProcess(qemu, ["-pidfile", pidfile("stubborn")], true);
    await writeOwner(await runDirOf("stubborn", stubborn.pid), { ...self, startTicks: self.startTicks - 1 });
    // The pidfile's number now belongs to an unrelated process.
    const unrelated = await startProcess("sleepy", ["-pidfile", pidfile("reused")]);
    await runDirOf("reused", unrelated.pid);
    // A QEMU, but of another run dir.
    const elsewhere = await startProcess(qemu, ["-pidfile", "/elsewhere/d/qemu.pid"]);
    await runDirOf("elsewhere", elsewhere.pid);
    // A QEMU whose control process (here: the unrelated one) still runs.
    const owned = await startProcess(qemu, ["-pidfile", pidfile("owned")]);
    const ownerProc = await readProc(unrelated.pid);
    await writeOwner(await runDirOf("owned", owned.pid), ownerProc as NonNullable<typeof ownerProc>);
    // Its QEMU is long gone.
    await runDirOf("stale", 2 ** 22 + 1);

    const bystanders = await Promise.all([unrelated, elsewhere, owned].map((p) => readProc(p.pid)));
    const logs: string[] = [];
    const hv = new QemuHypervisor({ runDir, log: (line) => logs.push(line) });
    const started = Date.now();
    expect((await hv.reclaim({ graceMs: 300 })).sort()).toEqual(["left", "stubborn"]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(await left.exited).toBe("SIGTERM");
    expect(await stubborn.exited).toBe("SIGKILL");
    expect((await readdir(runDir)).sort()).toEqual(["elsewhere", "owned", "reused", "stale"]);
    for (const bystander of bystanders) expect(bystander && (await isRunning(bystander))).toBe(true);
    expect(logs.join("\n")).toMatch(/VM owned: not reclaimed: its control process \(pid \d+\) still runs/);
    expect(logs.join("\n")).toMatch(/VM stubborn: reclaimed qemu pid \d+ left running \(SIGKILL\)/);

    // Nothing more to reclaim; the dir that only had a stale pidfile is start()'s to clear.
    expect(await hv.reclaim({ graceMs: 300 })).toEqual([]);
  });

  it("start() refuses an id whose QEMU an earlier process left running, until reclaim() ends it", async () => {
    const disk = join(runDir, "disk.qcow2");
    await writeFile(disk, "");
    const paths = vmPaths(join(runDir, "d1"));
    const leftover = await startProcess("qemu-system-x86_64", ["-pidfile", paths.pidfile]);
    await runDirOf("d1", leftover.pid);
    const hv = new QemuHypervisor({ runDir });
    await expect(hv.start({ vmId: "d1", diskPath: disk, memoryMiB: 128 })).rejects.toThrow(
      /already running as pid \d+, outside this control process \(reclaim\(\) ends it\)/,
    );
    expect(await hv.reclaim()).toEqual(["d1"]);
    expect(await leftover.exited).toBe("SIGTERM");
  });

  it("terminate() never signals a process that is no longer the one seen", async () => {
    const proc = await startProcess("qemu-system-x86_64", []);
    const seen = await readProc(proc.pid);
    if (!seen) throw new Error("no /proc entry for the stand-in");
    // Another start time: as if the pid had been handed to a new process since.
    expect(await terminate({ pid: seen.pid, startTicks: seen.startTicks + 1 }, { graceMs: 100 })).toBe(
      "gone",
    );
    expect(await isRunning(seen)).toBe(true);
    expect(await terminate(seen, { graceMs: 2000 })).toBe("SIGTERM");
    expect(await proc.exited).toBe("SIGTERM");
  });

  it("a runDir that does not exist yet holds nothing to reclaim; stopAll() without VMs is done at once", async () => {
    const hv = new QemuHypervisor({ runDir: join(runDir, "absent") });
    expect(await hv.reclaim()).toEqual([]);
    await hv.stopAll();
  });
});
