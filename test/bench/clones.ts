/**
 * Linked against full clones through the control plane, for an image holding 1 GiB of data:
 * time per clone (pool created -> all AVAILABLE), bytes used per pool, and the control plane's
 * linked-clone time against a bare loop of `qemu-img create -b` on the same replica. The control
 * plane writes that same file from a template without a qemu-img process (qcow2-overlay.ts), so
 * its own disk write is timed in a bare loop too: linked / that write is the control plane's cost.
 *
 * The replica is made ahead (as pool creation does with prepare-replica) by a one-desktop warm-up
 * pool, so the timed linked pool measures clones, not the one-off 1 GiB replica copy (reported
 * separately). Full clones are 1 GiB each: when the disk cannot hold 100 of them, fewer are made
 * (BENCH_FULL_CLONES) and the full pool's bytes are scaled to 100, which the table says.
 */
import { execFile } from "node:child_process";
import { mkdir, statfs } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { waitFor } from "../../local/emulators.ts";
import { prepareTenantImportFolder } from "../../shared/adapters/storage/image-import.ts";
import { qcow2Paths } from "../../shared/adapters/storage/qcow2-driver.ts";
import { createQcow2Overlay } from "../../shared/adapters/storage/qcow2-overlay.ts";
import { countCalls } from "./calls.ts";
import { treeCpuMs } from "./dr-stages.ts";
import { type BenchEnv, rawCloneLoopMs } from "./env.ts";
import { printJson, printTable, round } from "./report.ts";

const run = promisify(execFile);
const N = Number(process.env.BENCH_CLONES ?? 100);
const GiB = 1024 ** 3;

async function freeGiB(path: string) {
  const s = await statfs(path);
  return (s.bavail * s.bsize) / GiB;
}

export async function benchClones(env: BenchEnv): Promise<void> {
  const room = await freeGiB(env.dataDir);
  // Each full clone takes ~1 GiB: at most 40 (a few minutes of writing), and never more than
  // three quarters of the free space less 8 GiB.
  const fullClones = Number(
    process.env.BENCH_FULL_CLONES ?? Math.max(1, Math.min(N, 40, Math.floor(room * 0.75 - 8))),
  );
  const tenant = (await env.api("POST", "/v1/admin/tenants", env.operatorKey, { name: "bench" })).body;
  const key = tenant.apiKey as string;
  // The tenant's own import folder: a tenant imports from nowhere else.
  const folder = await prepareTenantImportFolder(env.region.app.config.storage.importRoots, tenant.tenantId);
  const source = join(folder, "golden-1g.qcow2");
  await run("qemu-img", ["create", "-q", "-f", "qcow2", source, "1G"]);
  await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 0 1G", source]);
  const image = (await env.api("POST", "/v1/images", key, { name: "golden-1g" })).body;
  await env.api("POST", `/v1/images/${image.imageId}/versions`, key, { source: { path: source } });
  await waitFor(
    "image READY",
    async () =>
      (await env.api("GET", `/v1/images/${image.imageId}`, key)).body.versions[0]?.state === "READY",
    600_000,
    100,
  );

  const timedPool = async (size: number, cloneType: "linked" | "full") => {
    const started = performance.now();
    const res = await env.api("POST", "/v1/pools", key, {
      name: cloneType,
      imageId: image.imageId,
      size,
      cloneType,
    });
    if (res.status !== 201) throw new Error(`pool create: ${JSON.stringify(res.body)}`);
    await waitFor(
      `${size} ${cloneType} desktops AVAILABLE`,
      async () =>
        (await env.api("GET", `/v1/pools/${res.body.poolId}`, key)).body.desktopCounts.AVAILABLE === size,
      1_800_000,
      50,
    );
    return { poolId: res.body.poolId as string, ms: performance.now() - started };
  };

  const warmUp = await timedPool(1, "linked");

  // The bare loop: what qemu-img alone takes for the same N deltas on the same replica, run before
  // and after the timed pool (their mean is the baseline), so that the machine's drift during the
  // run weighs on both sides alike.
  const paths = qcow2Paths(env.region.app.config.storage);
  const replica = paths.replica(
    { tenantId: tenant.tenantId, imageId: image.imageId, version: 1 },
    "ds-default",
  );
  const rawBeforeMs = await rawCloneLoopMs(replica, join(env.dataDir, "raw-before"), N);

  // What the timed pool asks of DynamoDB and SQS, by command and kind of item; the bench's own
  // look at the pool (GET /v1/pools/{poolId}: describePool) is counted apart.
  const calls = countCalls([env.region], { byKey: true, apart: { label: "poll:", frame: /describePool/ } });
  const cpuBefore = new Map<string, number>();
  await treeCpuMs(process.pid, cpuBefore);
  const linked = await timedPool(N, "linked");
  const callRows = calls.perChange(N).map(([n, c]): [string, number] => [n.replace(/^[^:]*: /, ""), c]);
  const cpuAfter = new Map<string, number>();
  await treeCpuMs(process.pid, cpuAfter);
  // CPU per clone, by process (the bench's own holds the region and its poll).
  const cpuPerClone = [...cpuAfter]
    .map(([name, ms]) => [name, round((ms - (cpuBefore.get(name) ?? 0)) / N, 1)] as const)
    .filter(([, ms]) => ms > 0)
    .sort((a, b) => b[1] - a[1]);

  const rawAfterMs = await rawCloneLoopMs(replica, join(env.dataDir, "raw-after"), N);
  const rawMs = (rawBeforeMs + rawAfterMs) / 2;
  // The disk write the control plane itself makes (a template with the replica's name put in, no
  // qemu-img process): what a linked clone costs beyond its file.
  const overlayDir = join(env.dataDir, "overlay-loop");
  await mkdir(overlayDir, { recursive: true });
  const overlayStarted = performance.now();
  for (let i = 0; i < N; i++) await createQcow2Overlay(replica, join(overlayDir, `d${i}.qcow2`));
  const overlayMs = performance.now() - overlayStarted;
  const polled = callRows.filter(([n]) => n.startsWith("poll:"));
  const made = callRows.filter(([n]) => !n.startsWith("poll:"));
  const sum = (rows: [string, number][]) =>
    round(
      rows.reduce((a, [, c]) => a + c, 0),
      2,
    );
  const list = (rows: [string, number][]) =>
    rows.map(([n, c]) => `${n.replace(/^poll: /, "")} ${round(c, 2)}`).join(", ");

  const full = await timedPool(fullClones, "full");
  const storage = (await env.api("GET", "/v1/storage", key)).body;
  const used = (poolId: string) =>
    storage.pools.find((p: { poolId: string }) => p.poolId === poolId).usedBytes as number;
  const linkedBytes = used(linked.poolId);
  const fullMeasured = used(full.poolId);
  const fullBytes = Math.round((fullMeasured / fullClones) * N);

  const linkedMsPerClone = linked.ms / N;
  const fullMsPerClone = full.ms / fullClones;
  const rawMsPerClone = rawMs / N;
  const figures = {
    bench: "clones",
    linkedMsPerClone: round(linkedMsPerClone),
    fullMsPerClone: round(fullMsPerClone),
    rawMsPerClone: round(rawMsPerClone),
    rawBeforeMsPerClone: round(rawBeforeMs / N),
    rawAfterMsPerClone: round(rawAfterMs / N),
    callsPerClone: sum(made),
    pollCallsPerClone: sum(polled),
    linkedBytes,
    fullBytes,
    overlayMsPerClone: round(overlayMs / N, 3),
    linkedToRawRatio: round(linked.ms / rawMs, 3),
    linkedToOverlayRatio: round(linked.ms / overlayMs, 1),
    linkedToFullBytesRatio: round(linkedBytes / fullBytes, 5),
    linkedToFullTimeRatio: round(linkedMsPerClone / fullMsPerClone, 4),
  };
  const mib = (b: number) => `${round(b / 1024 ** 2, 1)} MiB`;
  printTable(`Clones: ${N} desktops of an image holding 1 GiB of data`, [
    ["replica + 1 linked clone (warm-up, one-off)", `${round(warmUp.ms)} ms`],
    [`linked pool of ${N}: total`, `${round(linked.ms)} ms`],
    ["linked: per clone", `${round(linkedMsPerClone)} ms`],
    [
      `raw qemu-img create -b loop of ${N} before / after the linked pool`,
      `${round(rawBeforeMs)} / ${round(rawAfterMs)} ms`,
    ],
    ["raw: per clone (mean of the two)", `${round(rawMsPerClone)} ms`],
    ["linked / raw (target <= 1.25)", figures.linkedToRawRatio],
    [
      `the control plane's own disk write (template overlay) loop of ${N}: per clone`,
      `${figures.overlayMsPerClone} ms`,
    ],
    ["linked / that disk write", figures.linkedToOverlayRatio],
    ["linked: DynamoDB and SQS calls per clone", figures.callsPerClone],
    ["linked: calls per clone, by command and kind of item", list(made)],
    [
      "the bench's poll of the pool (not above): calls per clone",
      `${figures.pollCallsPerClone}: ${list(polled)}`,
    ],
    ["linked: CPU per clone, by process", cpuPerClone.map(([n, ms]) => `${n} ${ms} ms`).join(", ")],
    [`full pool of ${fullClones}: total`, `${round(full.ms)} ms`],
    ["full: per clone", `${round(fullMsPerClone)} ms`],
    ["linked pool bytes used (replica + deltas)", mib(linkedBytes)],
    [
      `full pool bytes used (${fullClones} measured${fullClones < N ? `, scaled to ${N}` : ""})`,
      `${mib(fullMeasured)} -> ${mib(fullBytes)}`,
    ],
    ["linked / full bytes (target <= 0.02)", figures.linkedToFullBytesRatio],
    ["linked / full time per clone", figures.linkedToFullTimeRatio],
  ]);
  printJson(figures);
}
