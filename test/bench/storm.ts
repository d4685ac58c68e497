/**
 * A morning logon storm on a pool that sizes itself: 300 users log on within 10 s to a pool that
 * starts at minSize 20, spare 20, maxSize 300. Those beyond the free desktops get tickets, the pool
 * grows under them and serves them in ticket order. Desktops are disks only (no VMs: the broker
 * and the storage model are measured, not guests' boots). Measured: the time until every user
 * has a desktop, each user's wait, and desktops provisioned per second during the storm against
 * a bare `qemu-img create -b` loop on the same replica, in the same run. The clone workers run as
 * their own process (run.ts), as the clone-worker function does on Lambda; their calls and CPU are
 * counted with the rest.
 */
import { join } from "node:path";
import { waitFor } from "../../local/emulators.ts";
import { qcow2Paths } from "../../shared/adapters/storage/qcow2-driver.ts";
import { treeCpuMs } from "./dr-stages.ts";
import { type BenchEnv, rawCloneLoopMs } from "./env.ts";
import { percentile, printJson, printTable, round } from "./report.ts";

const users = Number(process.env.BENCH_STORM_USERS ?? 300);
const windowMs = Number(process.env.BENCH_STORM_WINDOW_MS ?? 10_000);
const start = { minSize: 20, spare: 20 };

/** The length of the union of these [start, end] intervals. */
function unionMs(intervals: [number, number][]) {
  let total = 0;
  let reach = Number.NEGATIVE_INFINITY;
  for (const [start, end] of [...intervals].sort((a, b) => a[0] - b[0])) {
    if (end <= reach) continue;
    total += end - Math.max(start, reach);
    reach = end;
  }
  return total;
}

const sleepUntil = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - performance.now())));

export async function benchStorm(env: BenchEnv): Promise<void> {
  const tenant = (await env.api("POST", "/v1/admin/tenants", env.operatorKey, { name: "storm" })).body;
  const key = tenant.apiKey as string;
  const image = (await env.api("POST", "/v1/images", key, { name: "golden" })).body;
  await env.api("POST", `/v1/images/${image.imageId}/versions`, key, { source: { blankSizeMiB: 64 } });
  await waitFor(
    "image READY",
    async () =>
      (await env.api("GET", `/v1/images/${image.imageId}`, key)).body.versions[0]?.state === "READY",
    600_000,
    200,
  );
  const created = await env.api("POST", "/v1/pools", key, {
    name: "storm",
    imageId: image.imageId,
    ...start,
    maxSize: users,
    ticketTimeoutSeconds: 1800,
  });
  if (created.status !== 201) throw new Error(`pool: ${JSON.stringify(created.body)}`);
  const poolId = created.body.poolId as string;
  const counts = async () => (await env.api("GET", `/v1/pools/${poolId}`, key)).body.desktopCounts;
  await waitFor(
    "the pool's first desktops",
    async () => (await counts()).AVAILABLE === start.spare,
    600_000,
    200,
  );

  const replica = qcow2Paths(env.region.app.config.storage).replica(
    { tenantId: tenant.tenantId, imageId: image.imageId, version: 1 },
    "ds-default",
  );
  const raw = (100 * 1000) / (await rawCloneLoopMs(replica, join(env.dataDir, "raw-storm"), 100));

  // The storm: user i arrives at i/users of the window.
  // What the region asks of DynamoDB and SQS during the storm, by command and kind of item.
  const calls = env.countCalls({ byKey: true });
  await calls.mark();
  const cpuBefore = new Map<string, number>();
  await treeCpuMs(process.pid, cpuBefore);
  const stormStart = performance.now();
  const stormStartIso = new Date().toISOString();
  const arrivals: { userId: string; arrivedAt: number; servedAt?: number; ticketId?: string }[] = [];
  await Promise.all(
    Array.from({ length: users }, async (_, i) => {
      await sleepUntil(stormStart + (i * windowMs) / users);
      const userId = `u${String(i).padStart(4, "0")}`;
      const arrivedAt = Date.now();
      const res = await env.api("POST", `/v1/pools/${poolId}/logons`, key, { userId });
      const entry: (typeof arrivals)[number] = { userId, arrivedAt };
      if (res.status === 200) entry.servedAt = Date.now();
      else if (res.status === 202) entry.ticketId = res.body.ticketId;
      else throw new Error(`logon of ${userId}: ${res.status} ${JSON.stringify(res.body)}`);
      arrivals.push(entry);
    }),
  );
  // Looked at once a second: each look lists the pool's desktops, which the storm should not pay for.
  await waitFor("every user on a desktop", async () => (await counts()).ASSIGNED === users, 1_800_000, 1000);
  const allServedMs = performance.now() - stormStart;
  const callsPerUser = await calls.perChange(users);
  const cpuAfter = new Map<string, number>();
  await treeCpuMs(process.pid, cpuAfter);
  // The storm's CPU per user, by process (every process of the bench: the region, the emulators).
  const cpuPerUser = [...cpuAfter]
    .map(([name, ms]) => [name, Math.round((ms - (cpuBefore.get(name) ?? 0)) / users)] as const)
    .filter(([, ms]) => ms > 0)
    .sort((a, b) => b[1] - a[1]);

  const tickets = arrivals.filter((a) => a.ticketId);
  for (const a of tickets) {
    const t = (await env.api("GET", `/v1/pools/${poolId}/logons/${a.ticketId}`, key)).body;
    if (t.state !== "SERVED") throw new Error(`ticket ${a.ticketId} is ${t.state}`);
    a.servedAt = Date.parse(t.servedAt);
  }
  const byTicket = [...tickets].sort((a, b) => (a.ticketId as string).localeCompare(b.ticketId as string));
  const servedInOrder = byTicket.every(
    (a, i) => i === 0 || (a.servedAt ?? 0) >= (byTicket[i - 1]?.servedAt ?? 0),
  );
  const waits = arrivals.map((a) => (a.servedAt ?? Number.NaN) - a.arrivedAt).sort((x, y) => x - y);

  // Desktops provisioned during the storm: from the storm's start to the last one's disk done.
  const desktops = (await env.api("GET", `/v1/pools/${poolId}/desktops`, key)).body.items as {
    createdAt: string;
    pristineAt?: string;
    diskJobStartedAt?: string;
  }[];
  const grown = desktops.filter((d) => d.diskJobStartedAt && d.diskJobStartedAt >= stormStartIso);
  const at = (iso: string | undefined) => Date.parse(iso ?? stormStartIso) - Date.parse(stormStartIso);
  const lastDone = Math.max(...grown.map((d) => at(d.pristineAt)));
  // Users arrive over the window, so the pool cannot grow faster than they come: over the whole
  // storm, the rate says as much about arrivals as about provisioning. The provisioning rate is
  // measured while desktops were being provisioned (some recorded and not yet ready), which is
  // what a bare loop of qemu-img is compared with.
  const provisioningMs = unionMs(grown.map((d) => [at(d.createdAt), at(d.pristineAt)]));
  const provisionedPerSecond = (grown.length * 1000) / provisioningMs;
  const overTheStormPerSecond = (grown.length * 1000) / lastDone;
  // Where a grown desktop's time went: from its record to its disk job, and the disk job itself.
  const stage = (ms: number[]) => {
    const sorted = [...ms].sort((x, y) => x - y);
    return `${round(percentile(sorted, 50), 0)} / ${round(percentile(sorted, 99), 0)} ms`;
  };
  const stages: [string, string | number][] = [
    [
      "grown desktop: record -> disk job (p50 / p99)",
      stage(grown.map((d) => at(d.diskJobStartedAt) - at(d.createdAt))),
    ],
    [
      "grown desktop: disk job (p50 / p99)",
      stage(grown.map((d) => at(d.pristineAt) - at(d.diskJobStartedAt))),
    ],
    [
      "last desktop recorded / last disk done",
      `${Math.max(...grown.map((d) => at(d.createdAt)))} / ${lastDone} ms`,
    ],
  ];

  const figures = {
    users,
    allServedSeconds: round(allServedMs / 1000, 2),
    waitP50Ms: round(percentile(waits, 50), 0),
    waitP99Ms: round(percentile(waits, 99), 0),
    provisionedPerSecond: round(provisionedPerSecond, 2),
    rawCreatesPerSecond: round(raw, 2),
    provisionRatio: round(provisionedPerSecond / raw, 3),
    servedInOrder,
  };
  // Second by second (cumulative): users arrived, desktops recorded, disks done, users served.
  const stormAt = Date.parse(stormStartIso);
  const upTo = (times: number[], t: number) => times.filter((x) => x <= t).length;
  const arrivedAt = arrivals.map((a) => a.arrivedAt - stormAt);
  const servedTimes = arrivals.map((a) => (a.servedAt ?? Number.POSITIVE_INFINITY) - stormAt);
  const timeline = Array.from({ length: Math.ceil(allServedMs / 2000) + 1 }, (_, i) => {
    const t = i * 2000;
    return `${t / 1000}s ${upTo(arrivedAt, t)}/${upTo(
      grown.map((d) => at(d.createdAt)),
      t,
    )}/${upTo(
      grown.map((d) => at(d.pristineAt)),
      t,
    )}/${upTo(servedTimes, t)}`;
  });
  printTable(
    `Logon storm: ${users} users in ${windowMs / 1000} s on minSize ${start.minSize}, spare ${start.spare}, maxSize ${users} (no VMs)`,
    [
      ["served at once / queued with a ticket", `${users - tickets.length} / ${tickets.length}`],
      ["every user on a desktop after", `${figures.allServedSeconds} s`],
      ["wait p50 / p99", `${figures.waitP50Ms} / ${figures.waitP99Ms} ms`],
      ["desktops provisioned during the storm", grown.length],
      ["time with desktops being provisioned", `${round(provisioningMs, 0)} ms`],
      ["provisioned per second of it", figures.provisionedPerSecond],
      ["provisioned per second over the storm (arrivals bound it)", round(overTheStormPerSecond, 2)],
      ["raw qemu-img create -b per second (same run)", figures.rawCreatesPerSecond],
      ["provisioned / raw (target >= 0.5)", figures.provisionRatio],
      ["tickets served in ticket order", String(servedInOrder)],
      ...stages,
      ["every 2 s: arrived / recorded / disk done / served", timeline.join("  ")],
      [
        "DynamoDB and SQS calls per user, in all",
        round(
          callsPerUser.reduce((sum, [, c]) => sum + c, 0),
          1,
        ),
      ],
      [
        "DynamoDB and SQS calls per user, by command and kind of item",
        callsPerUser.map(([n, c]) => `${n.replace(/^[^:]*: /, "")} ${round(c, 1)}`).join(", "),
      ],
      ["CPU per user, by process", cpuPerUser.map(([n, ms]) => `${n} ${ms} ms`).join(", ")],
    ],
  );
  printJson(figures);
}
