/**
 * Real desktops on real QEMU (TCG unless KVM is usable): the guest built by guest/build.ts boots
 * from a qcow2 linked clone, and the QEMU adapter drives it. At most two VMs of 128 MiB at once.
 * The tests run in order and share VMs: booting under TCG is the expensive part.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { PNG } from "pngjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GuestImage } from "../../guest/build.ts";
import { isRunning, readProc } from "../../shared/adapters/hypervisor/host-process.ts";
import { detectAccel, QemuHypervisor } from "../../shared/adapters/hypervisor/qemu.ts";
import { VmNotRunningError } from "../../shared/ports/hypervisor.ts";
import { testGuest } from "../support/guest.ts";
import { vncLogin } from "../support/rfb.ts";
import { ConsoleSession, decodePng, differingPixels, pollUntil, Recorder } from "../support/vm.ts";
import { websocketHandshake } from "../support/websocket.ts";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const memoryMiB = 128;
/** A TCG boot takes a few seconds; the deadline allows for a loaded CI machine. */
const readyWithinMs = 90_000;
/** The banner area of the 720x400 text-mode screen (rows 3-9 of 25, 16 px each). */
const bannerRegion = { x: 0, y: 3 * 16, width: 720, height: 7 * 16 };

let image: GuestImage;
let work: string;
let hv: QemuHypervisor;
let rec: Recorder;
/** The instances of the reclaim tests: a control process that dies, and the one after it. */
let first: QemuHypervisor | undefined;
let second: QemuHypervisor | undefined;
const recorders: Recorder[] = [];
let goldenSha256: string;
const measured: string[] = [];

const sha256 = async (path: string) =>
  createHash("sha256")
    .update(await readFile(path))
    .digest("hex");

async function linkedClone(name: string): Promise<string> {
  const path = join(work, `${name}.qcow2`);
  await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image.disk, path]);
  return path;
}

/** Reads a file from the ext2/3/4 filesystem of a qcow2 (through its backing chain), without a VM. */
async function readFromDisk(qcow2: string, file: string): Promise<string> {
  const raw = `${qcow2}.raw`;
  await run("qemu-img", ["convert", "-U", "-O", "raw", qcow2, raw]);
  try {
    return (await run("debugfs", ["-R", `cat ${file}`, raw])).stdout;
  } finally {
    await rm(raw, { force: true });
  }
}

const bootFiles = () => ({ kernel: image.kernel, initrd: image.initrd, append: image.append });

async function boot(vmId: string, diskPath: string) {
  const since = rec.mark();
  const started = Date.now();
  const info = await hv.start({ vmId, diskPath, memoryMiB, bootFiles: bootFiles() });
  await rec.waitFor(vmId, "ready", readyWithinMs, since);
  const seconds = (Date.now() - started) / 1000;
  measured.push(`${vmId}: start() to ready ${seconds.toFixed(1)} s`);
  return info;
}

async function screen(vmId: string): Promise<PNG> {
  return decodePng(await hv.screenshot(vmId));
}

async function assign(vmId: string, userId: string) {
  const since = rec.mark();
  await hv.send(vmId, { type: "assign", userId, sessionId: `s-${userId}` });
  const assigned = await rec.waitFor(vmId, "assigned", 20_000, since);
  expect(assigned.value).toMatchObject({ userId, sessionId: `s-${userId}` });
}

beforeAll(async () => {
  image = await testGuest((line) => console.log(`guest image: ${line}`));
  goldenSha256 = await sha256(image.disk);
  work = await mkdtemp(join(tmpdir(), "pristine-vm-"));
  hv = new QemuHypervisor({ runDir: join(work, "run") });
  rec = new Recorder(hv);
  const { accel, why } = await detectAccel();
  measured.push(`accelerator: ${accel} (${why})`);
}, 300_000);

afterAll(async () => {
  await Promise.allSettled([hv, first, second].map((h) => h?.stopAll({ graceMs: 0 })));
  for (const r of [rec, ...recorders]) r?.close();
  if (work) await rm(work, { recursive: true, force: true });
  if (measured.length) console.log(`qemu desktops:\n  ${measured.join("\n  ")}`);
});

describe("a desktop on QEMU", () => {
  let alicePng: PNG;
  let aliceDisk: string;
  let deltaA: string;
  const aliceFile = "pristine user data 4711";

  it("boots a linked clone to Desktop Ready; its drive is the delta over the golden image", async () => {
    deltaA = await linkedClone("desktop-a");
    const info = await boot("desktop-a", deltaA);
    expect(info.pid).toBeGreaterThan(0);
    expect(info.connection.websocketPort).toBeUndefined();
    const spec = { vmId: "desktop-a", diskPath: deltaA, memoryMiB };
    expect(await hv.start(spec)).toBe(info);
    // Another control process on the same run dir must not start a second QEMU on this disk.
    const other = new QemuHypervisor({ runDir: join(work, "run") });
    await expect(other.start(spec)).rejects.toThrow(/already running as pid/);
    expect(await hv.status("desktop-a")).toBe("running");
    expect((await hv.list()).map((v) => v.vmId)).toEqual(["desktop-a"]);
    const drives = await hv.blockInfo("desktop-a");
    expect(drives).toEqual([
      expect.objectContaining({ device: "vda", file: deltaA, format: "qcow2", backingFile: image.disk }),
    ]);
  });

  it("VNC authentication takes the password set through QMP, not a wrong, previous or expired one", async () => {
    const { host, vncPort } = hv.connection("desktop-a");
    expect(vncPort).toBeGreaterThanOrEqual(5900);
    // No password yet: nobody gets in.
    expect((await vncLogin(host, vncPort, "")).ok).toBe(false);

    await hv.setConnectionPassword("desktop-a", "s3cret!x");
    const ok = await vncLogin(host, vncPort, "s3cret!x");
    expect(ok).toMatchObject({ ok: true, width: 720, height: 400 });
    expect(await vncLogin(host, vncPort, "s3cret!y")).toMatchObject({ ok: false });

    await hv.setConnectionPassword("desktop-a", "n3w-pass");
    expect((await vncLogin(host, vncPort, "s3cret!x")).ok).toBe(false);
    expect((await vncLogin(host, vncPort, "n3w-pass")).ok).toBe(true);

    await hv.setConnectionPassword("desktop-a", "n3w-pass", new Date(Date.now() - 1000));
    expect((await vncLogin(host, vncPort, "n3w-pass")).ok).toBe(false);
    await expect(hv.setConnectionPassword("desktop-a", "longer-than-8")).rejects.toThrow(/1 to 8 bytes/);
  });

  it("assigning alice draws her id on the screen", async () => {
    const before = await screen("desktop-a");
    await assign("desktop-a", "alice");
    alicePng = await screen("desktop-a");
    const changed = differingPixels(before, alicePng, bannerRegion);
    measured.push(`banner pixels changed by assigning alice: ${changed}`);
    // Each block-letter cell is 9x16 px: "alice" alone turns dozens of cells.
    expect(changed).toBeGreaterThan(30 * 9 * 16);
  });

  it("hot-plugs alice's user disk: formatted, mounted, written through the console; logoff", async () => {
    aliceDisk = join(work, "user-alice.qcow2");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", aliceDisk, "64M"]);
    const since = rec.mark();
    await hv.attachDisk("desktop-a", "userdata", aliceDisk);
    await rec.waitFor("desktop-a", "user-data-mounted", 30_000, since);
    expect((await hv.blockInfo("desktop-a")).map((d) => d.file)).toContain(aliceDisk);

    const user = new ConsoleSession(await hv.console("desktop-a"));
    try {
      expect((await user.run(`echo '${aliceFile}' > /home/user/f`)).status).toBe(0);
      expect((await user.run("echo scratch > /root/f")).status).toBe(0);
      expect((await user.run("grep -c ' /home/user ' /proc/mounts")).output).toMatch(/^1$/m);
      const loggedOff = rec.mark();
      user.type("logoff");
      const msg = await rec.waitFor("desktop-a", "logoff", 20_000, loggedOff);
      expect(msg.value).toMatchObject({ userId: "alice", sessionId: "s-alice" });
    } finally {
      user.close();
    }
    // Unmounted by logoff, so the guest lets the device go.
    await hv.detachDisk("desktop-a", "userdata");
    expect((await hv.blockInfo("desktop-a")).map((d) => d.file)).not.toContain(aliceDisk);
    await hv.detachDisk("desktop-a", "userdata");
  });

  it("stop() powers the guest off and reports an expected exit; writes are on the delta and user disk", async () => {
    measured.push(`desktop-a: host RSS ${((await hv.memoryUsage("desktop-a")) / MiB).toFixed(0)} MiB`);
    const started = Date.now();
    await hv.stop("desktop-a");
    measured.push(`desktop-a: stop() (ACPI power-off) took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const exit = await rec.waitForExit("desktop-a", 5000);
    expect(exit.value).toMatchObject({ expected: true, reason: "stopped" });
    expect(await hv.status("desktop-a")).toBe("stopped");
    await hv.stop("desktop-a");

    expect((await readFromDisk(aliceDisk, "/f")).trim()).toBe(aliceFile);
    expect((await readFromDisk(deltaA, "/root/f")).trim()).toBe("scratch");
    // The golden image is only ever a backing file.
    expect(await sha256(image.disk)).toBe(goldenSha256);
  });

  it("a second desktop: bob's screen differs from alice's; alice's disk returns with her file; release flushes", async () => {
    await boot("desktop-b", await linkedClone("desktop-b"));
    await assign("desktop-b", "bob");
    const bobPng = await screen("desktop-b");
    const differs = differingPixels(alicePng, bobPng, bannerRegion);
    measured.push(`banner pixels that differ between alice and bob: ${differs}`);
    expect(differs).toBeGreaterThan(10 * 9 * 16);

    let since = rec.mark();
    await hv.send("desktop-b", { type: "release" });
    await rec.waitFor("desktop-b", "user-data-released", 20_000, since);

    await assign("desktop-b", "alice");
    since = rec.mark();
    await hv.attachDisk("desktop-b", "userdata", aliceDisk);
    await rec.waitFor("desktop-b", "user-data-mounted", 30_000, since);
    const user = new ConsoleSession(await hv.console("desktop-b"));
    try {
      expect((await user.run("cat /home/user/f")).output).toContain(`\n${aliceFile}\n`);
      // /root is the desktop's own delta: alice's scratch file from desktop-a is not here.
      expect((await user.run("test -e /root/f")).status).toBe(1);
      // Not synced here: release must flush it before the disk goes.
      expect((await user.run("echo second > /home/user/g")).status).toBe(0);
    } finally {
      user.close();
    }
    since = rec.mark();
    await hv.send("desktop-b", { type: "release" });
    await rec.waitFor("desktop-b", "user-data-released", 20_000, since);
    await hv.detachDisk("desktop-b", "userdata");
    expect((await readFromDisk(aliceDisk, "/g")).trim()).toBe("second");
  });

  it("kill -9 of a VM's process is reported as an unexpected exit", async () => {
    const rss = await hv.memoryUsage("desktop-b");
    measured.push(`desktop-b: host RSS ${(rss / MiB).toFixed(0)} MiB`);
    expect(rss).toBeLessThanOrEqual(256 * MiB);
    const [info] = await hv.list();
    process.kill(info?.pid as number, "SIGKILL");
    const exit = await rec.waitForExit("desktop-b", 10_000);
    expect(exit.value).toMatchObject({ expected: false, reason: "killed", signal: "SIGKILL" });
    expect(await hv.status("desktop-b")).toBe("stopped");
    expect(await hv.list()).toEqual([]);
    await expect(hv.send("desktop-b", { type: "ping" })).rejects.toThrow(VmNotRunningError);
  });

  it("a VM killed while it starts (before its start answers) is reported as an unexpected exit too", async () => {
    // Killed as soon as it is listed: some starts still answer, some fail their init because the
    // VM died; either way the exit is the kill, not the clean-up stop of a failed start.
    const disk = join(work, "starting.qcow2");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", disk, "64M"]);
    for (let i = 0; i < 6; i++) {
      const vmId = `starting-${i}`;
      const started = hv.start({ vmId, diskPath: disk, memoryMiB }).then(
        () => "answered",
        () => "failed",
      );
      const pid = await pollUntil(
        async () => (await hv.list()).find((v) => v.vmId === vmId)?.pid,
        10_000,
        `${vmId} listed`,
        1,
      );
      process.kill(pid, "SIGKILL");
      const outcome = await started;
      const exit = await rec.waitForExit(vmId, 10_000);
      expect(exit.value, `${vmId} (start ${outcome})`).toMatchObject({ expected: false, reason: "killed" });
    }
  });

  it("websocket: true serves the screen as VNC over WebSocket: the HTTP Upgrade answers 101, then RFB", async () => {
    const info = await hv.start({
      vmId: "desktop-w",
      diskPath: await linkedClone("desktop-w"),
      memoryMiB,
      bootFiles: bootFiles(),
      websocket: true,
    });
    const { host, vncPort, websocketPort } = hv.connection("desktop-w");
    expect(info.connection).toEqual({ host, vncPort, websocketPort });
    expect(websocketPort).toBeGreaterThanOrEqual(5700);
    expect(websocketPort).not.toBe(vncPort);
    const ws = await websocketHandshake(host, websocketPort as number, {
      protocol: "binary",
      timeoutMs: 10_000,
    });
    expect(ws.status).toBe(101);
    expect(ws.headers["sec-websocket-accept"]).toBe(ws.expectedAccept);
    // The RFB server's greeting, in one binary frame: VNC itself speaks on this port.
    expect(ws.firstFrame).toEqual({ fin: true, opcode: 2, payload: Buffer.from("RFB 003.008\n") });
    await hv.stop("desktop-w", { graceMs: 0 });
    expect((await rec.waitForExit("desktop-w", 5000)).value).toMatchObject({ expected: true });
  });
});

describe("a control process that dies leaves its VMs running; the next one reclaims them", () => {
  let diskR: string;
  let rec2: Recorder;
  const specR = () => ({ vmId: "desktop-r", diskPath: diskR, memoryMiB, bootFiles: bootFiles() });

  it("reclaim() ends the earlier instance's QEMU with SIGTERM, removes its run dir; the id starts again", async () => {
    const runDir = join(work, "run");
    first = new QemuHypervisor({ runDir });
    // Only watches: the first instance is never called again, as if its process had died.
    const rec1 = new Recorder(first);
    recorders.push(rec1);
    diskR = await linkedClone("desktop-r");
    const since = rec1.mark();
    const old = await first.start(specR());
    await rec1.waitFor("desktop-r", "ready", readyWithinMs, since);
    const oldQemu = await readProc(old.pid as number);
    expect(oldQemu?.argv).toContain(join(runDir, "desktop-r", "qemu.pid"));

    second = new QemuHypervisor({ runDir });
    rec2 = new Recorder(second);
    recorders.push(rec2);
    expect(await second.list()).toEqual([]);
    await expect(second.start(specR())).rejects.toThrow(/already running as pid/);
    const started = Date.now();
    expect(await second.reclaim()).toEqual(["desktop-r"]);
    measured.push(`reclaim() of a running desktop took ${Date.now() - started} ms`);
    expect(oldQemu && (await isRunning(oldQemu))).toBe(false);
    // SIGTERM sufficed: QEMU catches it, flushes its images and exits 0; a SIGKILL would show here.
    const exit = await rec1.waitForExit("desktop-r", 5000);
    expect(exit.value).toMatchObject({ expected: false, exitCode: 0, signal: null });
    await expect(stat(join(runDir, "desktop-r"))).rejects.toMatchObject({ code: "ENOENT" });
    expect(await second.reclaim()).toEqual([]);

    // Same id, same disk: the old QEMU's write lock on the image is gone too.
    const since2 = rec2.mark();
    const again = await second.start(specR());
    await rec2.waitFor("desktop-r", "ready", readyWithinMs, since2);
    expect(again.pid).not.toBe(old.pid);
    expect((await second.list()).map((v) => v.vmId)).toEqual(["desktop-r"]);
    // The second instance keeps its own VMs out of reclaim().
    expect(await second.reclaim()).toEqual([]);
    expect(await second.status("desktop-r")).toBe("running");
  });

  it("stopAll() stops every VM of the instance in parallel, each powered off by its guest", async () => {
    const vms = second as QemuHypervisor;
    const since = rec2.mark();
    await vms.start({ ...specR(), vmId: "desktop-s", diskPath: await linkedClone("desktop-s") });
    await rec2.waitFor("desktop-s", "ready", readyWithinMs, since);
    const started = Date.now();
    await vms.stopAll({ graceMs: 30_000 });
    measured.push(
      `stopAll() of 2 desktops (ACPI power-off) took ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    for (const vmId of ["desktop-r", "desktop-s"]) {
      expect((await rec2.waitForExit(vmId, 5000)).value).toMatchObject({ expected: true, reason: "stopped" });
    }
    // Both guests powered off by themselves: well inside the grace, so neither needed QMP quit or SIGKILL.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await vms.list()).toEqual([]);
  });
});
