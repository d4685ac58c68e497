import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type Emulator, startDynamoDbLocal, startFauxqsProcess, waitFor } from "../../local/emulators.ts";
import { preflight } from "../../local/preflight.ts";
import { type Region, startRegion } from "../../local/region.ts";

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
  stop(): Promise<void>;
}

export async function startBenchEnv(): Promise<BenchEnv> {
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
  });
  return {
    dynamo,
    fauxqs,
    region,
    dataDir,
    operatorKey,
    api: apiOf(region),
    async stop() {
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
