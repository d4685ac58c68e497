import { randomBytes } from "node:crypto";
import { connect, createServer, type Socket } from "node:net";
import { afterAll, beforeAll, expect, inject } from "vitest";
import type { RegionOptions } from "../../local/region.ts";
import { userDataPaths } from "../../shared/adapters/storage/user-data-store.ts";
import {
  expectStatus,
  newTenant,
  readyImage,
  readyPool,
  run,
  startTestRegion,
  type TestRegion,
  waitFor,
} from "./harness.ts";

/**
 * A TCP proxy in front of the emulators: the primary reaches its peer through it, and a test cuts
 * it to make the DR region unreachable (a real network fault, not a mock).
 */
export async function startFaultProxy(target: string) {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let up = true;
  const server = createServer((client) => {
    if (!up) return client.destroy();
    const upstream = connect(Number(port), hostname === "localhost" ? "127.0.0.1" : hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => s.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  return {
    url,
    cut() {
      up = false;
      for (const s of sockets) s.destroy();
    },
    restore() {
      up = true;
    },
    stop: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

export interface RegionPair {
  primary: TestRegion;
  dr: TestRegion;
  proxy: Awaited<ReturnType<typeof startFaultProxy>>;
  stop(): Promise<void>;
}

/** A primary and a DR region on the shared emulators, each knowing the other by name. */
export async function startRegionPair(
  userDataSizeBytes = 64 * 1024 * 1024,
  drOverrides: Partial<RegionOptions> = {},
  primaryOverrides: Partial<RegionOptions> = {},
): Promise<RegionPair> {
  const id = randomBytes(3).toString("hex");
  const [p, d] = [`it-${id}-primary`, `it-${id}-dr`];
  const proxy = await startFaultProxy(inject("sqsEndpoint"));
  const primary = await startTestRegion({
    name: "primary",
    resourcePrefix: p,
    userDataSizeBytes,
    peer: { name: "dr", resourcePrefix: d, sqsEndpoint: proxy.url, s3Endpoint: proxy.url },
    ...primaryOverrides,
  });
  const dr = await startTestRegion({
    name: "dr",
    resourcePrefix: d,
    userDataSizeBytes,
    peer: { name: "primary", resourcePrefix: p },
    ...drOverrides,
  });
  return {
    primary,
    dr,
    proxy,
    async stop() {
      await Promise.all([primary.stop(), dr.stop()]);
      await proxy.stop();
    },
  };
}

/** Until a queue has nothing visible or in flight (the workers are idle on it). */
export { waitUntilDrained as waitForDrained } from "./harness.ts";

/** Starts a drill of `pools` in the DR region and answers its report once it is DONE. */
export async function runDrill(dr: TestRegion, key: string, pools: string[], timeoutMs = 180_000) {
  const started = await dr.api("POST", "/v1/dr/drills", { key, body: { pools } });
  if (started.status !== 202)
    throw new Error(`drill refused: ${started.status} ${JSON.stringify(started.body)}`);
  let report: any;
  await waitFor(
    "drill done",
    async () => {
      report = (await dr.api("GET", `/v1/dr/drills/${started.body.drillId}`, { key })).body;
      return report.phase === "DONE";
    },
    timeoutMs,
    250,
  );
  return report;
}

/** A user's data-disk file of a version in a region. */
export const userDataDisk = (r: TestRegion, tenantId: string, userId: string, version: number) =>
  userDataPaths(r.region.app.config.dr?.userDataPath ?? "").disk({ tenantId, userId }, version);

/**
 * One session of a user that changes their data: logon (the data is ATTACHING at once), the data
 * disk attached, `size` bytes of `pattern` written at `offset` into it, logoff. Returns its id.
 */
export async function changeUserData(
  r: TestRegion,
  tenant: { tenantId: string; key: string },
  poolId: string,
  userId: string,
  write: { pattern: number; offset?: string; size?: string },
): Promise<string> {
  const { key } = tenant;
  const logon = expectStatus(
    await r.api("POST", `/v1/pools/${poolId}/logons`, { key, body: { userId } }),
    200,
  );
  expect(logon.userData).toEqual({ state: "ATTACHING" });
  await waitFor(`${userId}'s data attached`, async () => {
    const s = await r.api("GET", `/v1/sessions/${logon.sessionId}`, { key });
    return s.body.userData?.state === "ATTACHED";
  });
  const overlay = r.region.app.ports.userDataStore.overlayPath(
    { tenantId: tenant.tenantId, userId },
    logon.sessionId,
  );
  const what = `write -P ${write.pattern} ${write.offset ?? "0"} ${write.size ?? "1M"}`;
  await run("qemu-io", ["-f", "qcow2", "-c", what, overlay]);
  expectStatus(await r.api("POST", `/v1/sessions/${logon.sessionId}/logoff`, { key }), 200);
  return logon.sessionId as string;
}

/** Waits until this region's peer has applied and verified the user's data up to `version`. */
export async function replicatedFrom(
  r: TestRegion,
  key: string,
  userId: string,
  version: number,
  timeoutMs = 90_000,
) {
  await waitFor(
    `${userId} v${version} replicated from ${r.region.name}`,
    async () => {
      const status = expectStatus(await r.api("GET", "/v1/dr/replication", { key }), 200);
      return status.users.some((u: any) => u.userId === userId && u.replicatedVersion >= version);
    },
    timeoutMs,
  );
}

/**
 * A region pair for a test file: a tenant of the primary with a READY image and a pool of `size`
 * AVAILABLE desktops there, made before the file's tests and stopped after them.
 */
export function useRegionPairWithPool(size: number) {
  const fx = {} as { pair: RegionPair; tenant: { tenantId: string; key: string }; poolId: string };
  beforeAll(async () => {
    fx.pair = await startRegionPair();
    fx.tenant = await newTenant(fx.pair.primary);
    const { imageId } = await readyImage(fx.pair.primary, fx.tenant.key);
    fx.poolId = await readyPool(fx.pair.primary, fx.tenant.key, imageId, size);
  });
  afterAll(async () => {
    await fx.pair?.stop();
  });
  return fx;
}

/** Whether a qcow2 disk reads `size` bytes of `pattern` at `offset` (qemu-io's own check). */
export async function holdsPattern(path: string, pattern: number, offset: string, size = "1M") {
  const read = `read -P ${pattern} ${offset} ${size}`;
  const { stdout } = await run("qemu-io", ["-f", "qcow2", "-r", "-U", "-c", read, path]);
  return !stdout.includes("Pattern verification failed");
}
