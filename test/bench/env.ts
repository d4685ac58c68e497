import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type Emulator, startDynamoDbLocal, startFauxqsProcess, waitFor } from "../../local/emulators.ts";
import { preflight } from "../../local/preflight.ts";
import { type Region, startRegion, type WorkerName, workerNames } from "../../local/region.ts";
import { startAgent } from "../support/agent.ts";
import { countAgentCalls, countCalls } from "./calls.ts";

process.env.POWERTOOLS_LOG_LEVEL ??= "WARN";

const runFile = promisify(execFile);

type Api = (
  method: string,
  path: string,
  key: string,
  body?: unknown,
) => Promise<{ status: number; body: any }>;

/** Calls to a region's API with a key, as a tenant or operator would make them. */
export function apiOf(region: Region): Api {
  return async (method, path, key, body) => {
    const res = await fetch(`${region.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { "content-type": "application/json" } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
}

export interface BenchEnv {
  dynamo: Emulator;
  fauxqs: Emulator;
  region: Region;
  dataDir: string;
  operatorKey: string;
  api: Api;
  /** The calls of the region's every worker, in this process or apart (see calls.ts). */
  countCalls(opts?: { byKey?: boolean }): {
    mark(): Promise<void>;
    perChange(per: number): Promise<[string, number][]>;
  };
  stop(): Promise<void>;
}

export async function startBenchEnv(opts: { workersApart?: WorkerName[] } = {}): Promise<BenchEnv> {
  await preflight();
  const [dynamo, fauxqs] = await Promise.all([startDynamoDbLocal(), startFauxqsProcess()]);
  const dataDir = await mkdtemp(join(tmpdir(), "pristine-bench-"));
  const operatorKey = `prs_op_${randomBytes(16).toString("hex")}`;
  const region = await startRegion({
    name: "bench",
    dynamodbEndpoint: dynamo.endpoint,
    sqsEndpoint: fauxqs.endpoint,
    dataDir,
    operatorKey,
    cloneWorkerConcurrency: 4,
    workers: workerNames.filter((w) => !opts.workersApart?.includes(w)),
  });
  // Workers apart run as their own process (as each function is on Lambda), with the same
  // concurrency, their calls counted there (agent-calls.ts).
  const agentCallsFile = join(dataDir, "agent-calls.json");
  const agent = opts.workersApart?.length
    ? startAgent(
        region,
        opts.workersApart,
        { BENCH_AGENT_CALLS_FILE: agentCallsFile },
        {
          concurrency: 4,
          nodeArgs: ["--import", fileURLToPath(new URL("./agent-calls.ts", import.meta.url))],
        },
      )
    : undefined;
  return {
    dynamo,
    fauxqs,
    region,
    dataDir,
    operatorKey,
    api: apiOf(region),
    countCalls(o = {}) {
      const own = countCalls([region], o);
      const apart = agent && countAgentCalls(region.name, agentCallsFile, () => agent.child.kill("SIGUSR2"));
      return {
        async mark() {
          own.mark();
          await apart?.mark();
        },
        async perChange(per: number) {
          const sums = new Map(own.perChange(per));
          for (const [n, c] of (await apart?.perChange(per)) ?? [])
            sums.set(n, Math.round(((sums.get(n) ?? 0) + c) * 100) / 100);
          return [...sums].sort((a, b) => b[1] - a[1]);
        },
      };
    },
    async stop() {
      await agent?.stop();
      await region.stop();
      await Promise.all([dynamo.stop(), fauxqs.stop()]);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Tenant + READY image + pool of `size` AVAILABLE desktops. */
export async function readyPool(env: BenchEnv, size: number, source: unknown = { blankSizeMiB: 64 }) {
  const tenant = (await env.api("POST", "/v1/admin/tenants", env.operatorKey, { name: "bench" })).body;
  const key = tenant.apiKey as string;
  const image = (await env.api("POST", "/v1/images", key, { name: "golden" })).body;
  const version = await env.api("POST", `/v1/images/${image.imageId}/versions`, key, { source });
  if (version.status !== 202) throw new Error(`publish failed: ${JSON.stringify(version.body)}`);
  await waitFor(
    "image READY",
    async () => {
      const v = (await env.api("GET", `/v1/images/${image.imageId}`, key)).body.versions[0];
      if (v?.state === "FAILED") throw new Error(v.error);
      return v?.state === "READY";
    },
    600_000,
    200,
  );
  const pool = (await env.api("POST", "/v1/pools", key, { name: "bench", imageId: image.imageId, size }))
    .body;
  const started = performance.now();
  await waitFor(
    `${size} desktops AVAILABLE`,
    async () => {
      const counts = (await env.api("GET", `/v1/pools/${pool.poolId}`, key)).body.desktopCounts;
      return counts.AVAILABLE === size;
    },
    600_000,
    200,
  );
  return {
    tenantId: tenant.tenantId as string,
    key,
    imageId: image.imageId as string,
    poolId: pool.poolId as string,
    provisionMs: performance.now() - started,
  };
}

/**
 * The bare loop the control plane is measured against: `count` linked-clone deltas made by
 * qemu-img alone, one after the other, on `replica`. Answers the milliseconds it took.
 */
export async function rawCloneLoopMs(replica: string, dir: string, count: number): Promise<number> {
  await mkdir(dir, { recursive: true });
  const started = performance.now();
  for (let i = 0; i < count; i++)
    await runFile("qemu-img", [
      "create",
      "-q",
      "-f",
      "qcow2",
      "-F",
      "qcow2",
      "-b",
      replica,
      join(dir, `d${i}.qcow2`),
    ]);
  return performance.now() - started;
}
