/**
 * `npm run bench -- boot`: desktops as VMs, against plain QEMU in the same run.
 *
 * - Pool boot: a pool of 8 desktops from pool creation to all AVAILABLE (disks made, VMs booted,
 *   each agent's Desktop Ready), against 8 plain `qemu-system-x86_64` boots of linked clones of
 *   the same guest, started together, until each agent says ready.
 * - Refresh cycle: a logoff to the desktop AVAILABLE again (VM stopped, delta rebuilt, VM booted,
 *   ready), against a plain stop + `qemu-img create` + boot; medians of 3 each, alternated.
 * - Host memory per running VM (RSS of its QEMU process), 128 MiB guests.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { GuestImage } from "../../guest/build.ts";
import { waitFor } from "../../local/emulators.ts";
import { startRegion } from "../../local/region.ts";
import { detectAccel } from "../../shared/adapters/hypervisor/accel.ts";
import { qemuArgs, vmPaths } from "../../shared/adapters/hypervisor/qemu-command.ts";
import { prepareTenantImportFolder } from "../../shared/adapters/storage/image-import.ts";
import { testGuest } from "../support/guest.ts";
import { apiOf, type BenchEnv } from "./env.ts";
import { median, printJson, printTable, round } from "./report.ts";

const run = promisify(execFile);
const N = Number(process.env.BENCH_BOOT_DESKTOPS ?? 8);
const cycles = Number(process.env.BENCH_BOOT_CYCLES ?? 3);
const memoryMiB = 128;

/** A plain QEMU of the guest, without the control plane: started, then ready when its agent says so. */
async function plainBoot(
  guest: GuestImage,
  dir: string,
  name: string,
  accel: "kvm" | "tcg",
  started: ChildProcess[],
) {
  const disk = join(dir, `${name}.qcow2`);
  await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", guest.disk, disk]);
  const runDir = join(dir, name);
  await mkdir(runDir, { recursive: true });
  const paths = vmPaths(runDir);
  const args = qemuArgs({
    spec: {
      vmId: name,
      diskPath: disk,
      memoryMiB,
      bootFiles: { kernel: guest.kernel, initrd: guest.initrd, append: guest.append },
    },
    accel,
    paths,
    vncHost: "127.0.0.1",
    sandbox: true,
    tcgCacheMiB: 32,
  });
  const child = spawn("qemu-system-x86_64", args, { stdio: "ignore" });
  // Known at once: a boot that fails later still has its QEMU killed by the caller.
  started.push(child);
  await waitFor(
    `${name}'s agent socket`,
    async () => {
      await new Promise<void>((resolve, reject) => {
        const probe = connect(paths.agent, () => {
          probe.destroy();
          resolve();
        });
        probe.on("error", reject);
      });
      return true;
    },
    30_000,
    20,
  );
  // Read the agent's channel until Desktop Ready.
  await new Promise<void>((resolve, reject) => {
    const socket = connect(paths.agent);
    let text = "";
    const timer = setTimeout(() => reject(new Error(`${name} never said ready`)), 180_000);
    socket.on("data", (d: Buffer) => {
      text += d.toString();
      if (text.includes('"type":"ready"')) {
        clearTimeout(timer);
        socket.destroy();
        resolve();
      }
    });
    socket.on("error", reject);
  });
  return { child, disk };
}

async function stopPlain(child: ChildProcess) {
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

export async function benchBoot(env: BenchEnv): Promise<void> {
  const guest = await testGuest();
  const { accel } = await detectAccel();
  const scratch = await mkdtemp(join(tmpdir(), "pristine-bench-boot-"));
  const region = await startRegion({
    name: "boot",
    dynamodbEndpoint: env.dynamo.endpoint,
    sqsEndpoint: env.fauxqs.endpoint,
    dataDir: join(scratch, "region"),
    operatorKey: env.operatorKey,
    resourcePrefix: `bench-boot-${randomBytes(3).toString("hex")}`,
    hypervisor: "qemu",
    guestDir: guest.dir,
    reconcileEveryMs: 0,
  });
  const api = apiOf(region);
  const plain: ChildProcess[] = [];
  try {
    const tenant = (await api("POST", "/v1/admin/tenants", env.operatorKey, { name: "boot" })).body;
    const key = tenant.apiKey as string;
    const folder = await prepareTenantImportFolder(region.app.config.storage.importRoots, tenant.tenantId);
    await copyFile(guest.disk, join(folder, "desktop.qcow2"));
    const image = (await api("POST", "/v1/images", key, { name: "desktop" })).body;
    await api("POST", `/v1/images/${image.imageId}/versions`, key, { source: { path: "desktop.qcow2" } });
    await waitFor(
      "image READY",
      async () => (await api("GET", `/v1/images/${image.imageId}`, key)).body.versions[0]?.state === "READY",
      120_000,
      100,
    );

    // Plain QEMU first: 8 boots together.
    const rawStarted = performance.now();
    const raws = await Promise.all(
      Array.from({ length: N }, (_, i) => plainBoot(guest, scratch, `raw${i}`, accel, plain)),
    );
    const rawBootSeconds = (performance.now() - rawStarted) / 1000;
    await Promise.all(raws.map((r) => stopPlain(r.child)));
    plain.length = 0;

    // The control plane: pool creation to every desktop AVAILABLE.
    const poolStarted = performance.now();
    const pool = (await api("POST", "/v1/pools", key, { name: "boot", imageId: image.imageId, size: N }))
      .body;
    await waitFor(
      "pool ready",
      async () => (await api("GET", `/v1/pools/${pool.poolId}`, key)).body.desktopCounts?.AVAILABLE === N,
      600_000,
      100,
    );
    const poolReadySeconds = (performance.now() - poolStarted) / 1000;

    const hypervisor = region.host?.runtime.hypervisor;
    if (!hypervisor) throw new Error("no host");
    const vms = await hypervisor.list();
    const memory = await Promise.all(vms.map((v) => hypervisor.memoryUsage(v.vmId)));
    const memoryPerVmMiB = memory.reduce((a, b) => a + b, 0) / memory.length / (1024 * 1024);

    // Refresh cycles, alternated with plain ones.
    const refresh: number[] = [];
    const rawRefresh: number[] = [];
    let plainVm = await plainBoot(guest, scratch, "cycle", accel, plain);
    for (let i = 0; i < cycles; i++) {
      const s = (await api("POST", `/v1/pools/${pool.poolId}/logons`, key, { userId: `u${i}` })).body;
      const t0 = performance.now();
      await api("POST", `/v1/sessions/${s.sessionId}/logoff`, key);
      await waitFor(
        "desktop back",
        async () => {
          const ds = (await api("GET", `/v1/pools/${pool.poolId}/desktops`, key)).body.items;
          return ds.find((d: any) => d.desktopId === s.desktopId)?.state === "AVAILABLE";
        },
        300_000,
        50,
      );
      refresh.push((performance.now() - t0) / 1000);

      const t1 = performance.now();
      await stopPlain(plainVm.child);
      plain.length = 0;
      await rm(plainVm.disk, { force: true });
      plainVm = await plainBoot(guest, scratch, "cycle", accel, plain);
      rawRefresh.push((performance.now() - t1) / 1000);
    }
    const figures = {
      desktops: N,
      poolReadySeconds: round(poolReadySeconds),
      rawBootSeconds: round(rawBootSeconds),
      bootRatio: round(poolReadySeconds / rawBootSeconds),
      refreshSeconds: round(median(refresh)),
      rawRefreshSeconds: round(median(rawRefresh)),
      refreshRatio: round(median(refresh) / median(rawRefresh)),
      memoryPerVmMiB: round(memoryPerVmMiB, 1),
    };
    printTable(`desktops as VMs: a pool of ${N} under ${accel.toUpperCase()}, ${memoryMiB} MiB guests`, [
      ["pool creation to all AVAILABLE (s)", figures.poolReadySeconds],
      [`${N} plain qemu boots to ready, together (s)`, figures.rawBootSeconds],
      ["ratio (target <= 1.3)", figures.bootRatio],
      [
        "refresh: logoff to AVAILABLE, median (s)",
        `${figures.refreshSeconds} (${refresh.map((x) => round(x)).join(" / ")})`,
      ],
      [
        "plain stop + qemu-img create + boot, median (s)",
        `${figures.rawRefreshSeconds} (${rawRefresh.map((x) => round(x)).join(" / ")})`,
      ],
      ["ratio (target <= 1.3)", figures.refreshRatio],
      ["host memory per running VM (MiB, target <= 256)", figures.memoryPerVmMiB],
    ]);
    printJson(figures);
  } finally {
    for (const c of plain) c.kill("SIGKILL");
    await region.stop();
    await rm(scratch, { recursive: true, force: true });
  }
}
