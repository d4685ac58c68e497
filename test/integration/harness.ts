import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, inject } from "vitest";
import { waitFor } from "../../local/emulators.ts";
import { type Region, type RegionOptions, startRegion } from "../../local/region.ts";
import { prepareTenantImportFolder } from "../../shared/adapters/storage/image-import.ts";
import { qcow2Paths } from "../../shared/adapters/storage/qcow2-driver.ts";
import { createApp } from "../../shared/app.ts";
import { assertMatchesContract } from "../support/contract.ts";
import { jobTap } from "../support/job-tap.ts";

export const run = promisify(execFile);
export { waitFor };

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export interface TestRegion {
  region: Region;
  dataDir: string;
  operatorKey: string;
  paths: ReturnType<typeof qcow2Paths>;
  api<T = any>(
    method: string,
    path: string,
    opts?: { key?: string; body?: unknown; raw?: string; contentType?: string },
  ): Promise<ApiResponse<T>>;
  stop(): Promise<void>;
}

/** A fresh region (own table, queues and data dir) on the run's shared emulators. */
export async function startTestRegion(overrides: Partial<RegionOptions> = {}): Promise<TestRegion> {
  const dataDir = await mkdtemp(join(tmpdir(), "pristine-it-"));
  const operatorKey = `prs_op_${randomBytes(16).toString("hex")}`;
  const region = await startRegion({
    name: "it",
    dynamodbEndpoint: inject("dynamodbEndpoint"),
    sqsEndpoint: inject("sqsEndpoint"),
    dataDir,
    operatorKey,
    resourcePrefix: `it-${randomBytes(4).toString("hex")}`,
    ...overrides,
  });
  const api: TestRegion["api"] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = {};
    if (opts.key) headers.authorization = `Bearer ${opts.key}`;
    let body: string | undefined = opts.raw;
    if (opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined) headers["content-type"] = opts.contentType ?? "application/json";
    const res = await fetch(`${region.apiUrl}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
    });
    const text = await res.text();
    assertMatchesContract(method, path, {
      status: res.status,
      contentType: res.headers.get("content-type"),
      text,
    });
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  };
  return {
    region,
    dataDir,
    operatorKey,
    paths: qcow2Paths(region.app.config.storage),
    api,
    async stop() {
      await region.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export function expectStatus<T>(res: ApiResponse<T>, status: number): T {
  if (res.status !== status)
    throw new Error(`expected HTTP ${status}, got ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Creates a tenant and returns its key. */
export async function newTenant(r: TestRegion, name = "acme"): Promise<{ tenantId: string; key: string }> {
  const body = expectStatus(
    await r.api("POST", "/v1/admin/tenants", { key: r.operatorKey, body: { name } }),
    201,
  );
  return { tenantId: body.tenantId, key: body.apiKey };
}

/** Publishes an image version and waits until it is READY. */
export async function readyImage(r: TestRegion, key: string, source: unknown = { blankSizeMiB: 64 }) {
  const image = expectStatus(await r.api("POST", "/v1/images", { key, body: { name: "golden" } }), 201);
  return { imageId: image.imageId as string, version: await readyVersion(r, key, image.imageId, source) };
}

/** Publishes another version of an image and waits until it is READY; returns its number. */
export async function readyVersion(r: TestRegion, key: string, imageId: string, source: unknown) {
  const version = expectStatus(
    await r.api("POST", `/v1/images/${imageId}/versions`, { key, body: { source } }),
    202,
  );
  await waitFor(
    `image ${imageId} v${version.version} READY`,
    async () => {
      const got = await r.api("GET", `/v1/images/${imageId}`, { key });
      const v = got.body.versions.find((x: any) => x.version === version.version);
      if (v?.state === "FAILED") throw new Error(`publish failed: ${v.error}`);
      return v?.state === "READY";
    },
    60_000,
  );
  return version.version as number;
}

/** Registers a datastore in a folder of the region's data dir (operator route). */
export async function registerDatastore(
  r: TestRegion,
  datastoreId: string,
  capacityGiB: number,
  overcommit = 1,
) {
  const path = join(r.dataDir, "datastores", datastoreId);
  expectStatus(
    await r.api("POST", "/v1/admin/datastores", {
      key: r.operatorKey,
      body: { datastoreId, path, capacityGiB, overcommit },
    }),
    201,
  );
  return path;
}

/** The driver's paths on a datastore registered in the table (or the default one). */
export async function pathsOn(r: TestRegion, datastoreId: string) {
  const ds = await r.region.app.ports.datastores.get(datastoreId);
  const storage = r.region.app.config.storage;
  return ds ? qcow2Paths({ ...storage, datastores: { [datastoreId]: ds.path } }) : r.paths;
}

/** Creates a pool and waits until every desktop is AVAILABLE. */
export async function readyPool(
  r: TestRegion,
  key: string,
  imageId: string,
  size: number,
  extra: Record<string, unknown> = {},
) {
  const pool = expectStatus(
    await r.api("POST", "/v1/pools", { key, body: { name: `pool-${size}`, imageId, size, ...extra } }),
    201,
  );
  await waitForCounts(r, key, pool.poolId, { AVAILABLE: size });
  return pool.poolId as string;
}

export async function waitForCounts(
  r: TestRegion,
  key: string,
  poolId: string,
  want: Record<string, number>,
  timeoutMs = 90_000,
) {
  await waitFor(
    `pool ${poolId} counts ${JSON.stringify(want)}`,
    async () => {
      const got = await r.api("GET", `/v1/pools/${poolId}`, { key });
      return Object.entries(want).every(([state, n]) => got.body.desktopCounts?.[state] === n);
    },
    timeoutMs,
  );
}

/** Messages waiting and in flight on a queue. */
export async function queueDepth(
  r: TestRegion,
  queueUrl: string,
): Promise<{ waiting: number; inFlight: number }> {
  const out = await r.region.app.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }),
  );
  return {
    waiting: Number(out.Attributes?.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
  };
}

export async function waitUntilDrained(r: TestRegion, queueUrl: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    `queue ${queueUrl} drained`,
    async () => {
      const { waiting, inFlight } = await queueDepth(r, queueUrl);
      return waiting === 0 && inFlight === 0;
    },
    timeoutMs,
  );
}

export interface TenantRegion {
  /** The region (its API, paths, queues and app). */
  r: TestRegion;
  tenant: { tenantId: string; key: string };
  /** A READY image of the tenant, when the fixture was asked for one. */
  imageId: string;
  /** A pool of AVAILABLE desktops on that image, when asked for one. */
  poolId: string;
}

/**
 * The integration tests' one fixture: a fresh region for the file, a tenant in it and, when asked,
 * a READY image and a ready pool, made before the file's tests and stopped after them.
 */
export function useTenantRegion(
  opts: { region?: Partial<RegionOptions>; image?: unknown; poolSize?: number } = {},
): TenantRegion {
  const fx = {} as TenantRegion;
  beforeAll(async () => {
    fx.r = await startTestRegion(opts.region);
    fx.tenant = await newTenant(fx.r);
    if (opts.image !== undefined || opts.poolSize !== undefined)
      fx.imageId = (await readyImage(fx.r, fx.tenant.key, opts.image ?? { blankSizeMiB: 64 })).imageId;
    if (opts.poolSize !== undefined)
      fx.poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, opts.poolSize);
  });
  afterAll(async () => {
    await fx.r?.stop();
  });
  return fx;
}

/** A file's path in the tenant's import folder (`<dataDir>/imports/<tenantId>/`), made ready to write. */
export async function importPath(r: TestRegion, tenantId: string, name: string): Promise<string> {
  return join(await prepareTenantImportFolder(r.region.app.config.storage.importRoots, tenantId), name);
}

/** The disk file a desktop uses now (its generation's), read from its record. */
export async function diskPathOf(r: TestRegion, tenantId: string, poolId: string, desktopId: string) {
  const d = await r.region.app.ports.desktops.get(tenantId, poolId, desktopId);
  if (!d) throw new Error(`desktop ${desktopId} does not exist`);
  return (await pathsOn(r, d.datastoreId)).desktop(d);
}

/** Every disk file of a desktop, of any generation (empty once it is deleted). */
export async function diskFilesOf(r: TestRegion, tenantId: string, poolId: string, desktopId: string) {
  const folder = r.paths.poolFolder({ tenantId, poolId, datastoreId: "ds-default" });
  return (await readdir(folder).catch(() => [] as string[])).filter((f) => f.startsWith(`${desktopId}.`));
}

/**
 * A region whose host runs desktops as VMs (QEMU), a tenant, and a READY image of the test guest
 * (`npm run image:build`'s desktop, built once into the guest cache).
 */
export async function startVmRegion(opts: Partial<RegionOptions> = {}) {
  // Loaded here only: the other tests never build a guest.
  const { testGuest } = await import("../support/guest.ts");
  const guest = await testGuest();
  const r = await startTestRegion({ hypervisor: "qemu", guestDir: guest.dir, reconcileEveryMs: 0, ...opts });
  const tenant = await newTenant(r);
  const source = await importPath(r, tenant.tenantId, "desktop.qcow2");
  await copyFile(guest.disk, source);
  const { imageId } = await readyImage(r, tenant.key, { path: source });
  return { r, tenant, imageId };
}

/**
 * A second process's app on a region's configuration (a reconciler's own), whose DynamoDB client
 * records the commands it sends (and the index each reads); `close` lets it go.
 */
export function recordingApp(config: Region["app"]["config"]) {
  const app = createApp(config);
  const calls: { command: string; index?: string }[] = [];
  app.dynamodb.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { IndexName?: string };
      calls.push({
        command: context.commandName ?? "?",
        ...(input.IndexName ? { index: input.IndexName } : {}),
      });
      return next(args);
    },
    { step: "initialize", name: "recordCommands" },
  );
  const close = async () => {
    await app.metrics.close();
    app.sqs.destroy();
    app.dynamodb.destroy();
  };
  return { app, calls, close };
}

/**
 * The region's clone worker run only through the test's hands (its queue tapped), and a 16 MiB
 * image published through it: the tests then decide which delivery of a disk job runs when.
 */
export async function tapCloneWorker(fx: { r: TestRegion; tenant: { key: string } }) {
  const tap = jobTap(fx.r.region, "clone-worker");
  // Publishing runs through the clone worker too: deliver its job while waiting.
  const ready = readyImage(fx.r, fx.tenant.key, { blankSizeMiB: 16 });
  await waitFor("image imported", async () => {
    await tap.drain();
    return (await Promise.race([
      ready.then(() => true),
      new Promise((r) => setTimeout(() => r(false), 50)),
    ])) as boolean;
  });
  return { tap, imageId: (await ready).imageId as string };
}
