/**
 * Faults, on real parts: a worker process killed at each step of provision, refresh, recompose,
 * commit and ship (`PRISTINE_CRASH_AT`), every message delivered twice, DynamoDB throttling and
 * 5xx from a proxy, a full datastore, and qemu-img failing. Each ends with nothing lost, no
 * desktop stuck past the reconciler, and the failure visible. `npm test` runs a sample of the
 * crash points; `npm run test:stress` runs them all.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reconcile } from "../../shared/domain/reconcile.ts";
import { type AgentProcess, startAgent } from "../support/agent.ts";
import { startDynamoFaultProxy } from "../support/dynamodb-fault-proxy.ts";
import { type RegionPair, startRegionPair } from "./dr-harness.ts";
import {
  diskPathOf,
  expectStatus,
  newTenant,
  readyImage,
  readyPool,
  readyVersion,
  run,
  startTestRegion,
  type TestRegion,
  waitFor,
  waitForCounts,
} from "./harness.ts";

const stress = process.env.PRISTINE_STRESS === "1";
const diskPoints = [
  "provision:before-disk",
  "provision:before-available",
  "replica:copying",
  "refresh:before-disk",
  "refresh:before-available",
  "recompose:before-disk",
  "recompose:before-available",
];
const dataPoints = ["commit:before-record", "commit:before-cleanup", "ship:before-send", "ship:before-mark"];
const sampled = new Set(["refresh:before-available", "commit:before-record", "ship:before-send"]);
const chosen = (points: string[]) => points.filter((p) => stress || sampled.has(p));

describe("a worker process killed at each step", () => {
  let pair: RegionPair;
  let tenant: { tenantId: string; key: string };
  const agents: AgentProcess[] = [];
  const agent = (workers: string[], crashAt?: string) => {
    const a = startAgent(pair.primary.region, workers, crashAt ? { PRISTINE_CRASH_AT: crashAt } : {});
    agents.push(a);
    return a;
  };

  beforeAll(async () => {
    // The primary's clone, user-data and replication workers run as agent processes only; a
    // message a dead agent held comes back after 3 s, as Lambda's would after its timeout.
    pair = await startRegionPair(
      64 * 1024 * 1024,
      { queueVisibilitySeconds: 3 },
      { workers: ["logoff"], queueVisibilitySeconds: 3, reconcileEveryMs: 0 },
    );
    tenant = await newTenant(pair.primary);
  }, 120_000);
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await pair?.stop();
  });

  const api = (method: string, path: string, body?: unknown) =>
    pair.primary.api(method, path, { key: tenant.key, ...(body !== undefined ? { body } : {}) });
  const desktops = async (poolId: string) =>
    expectStatus(await api("GET", `/v1/pools/${poolId}/desktops`), 200).items;

  /** The crashing agent dies at its point (exit 137, a log line with ids); a fresh one finishes the work. */
  async function crashThenRecover(workers: string[], point: string, trigger?: () => Promise<unknown>) {
    const doomed = agent(workers, point);
    await trigger?.();
    expect(await doomed.exited).toBe(137);
    expect(doomed.output()).toMatch(new RegExp(`crashing at ${point} \\{.*"tenantId":"${tenant.tenantId}"`));
    // The reconciler may re-send what the dead worker left; duplicates are harmless.
    await reconcile(pair.primary.region.app.ports, 0);
    return agent(workers);
  }

  async function assertPristine(poolId: string) {
    for (const d of await desktops(poolId)) {
      expect(d.state).toBe("AVAILABLE");
      const disk = await diskPathOf(pair.primary, tenant.tenantId, poolId, d.desktopId);
      const { stdout } = await run("qemu-img", [
        "compare",
        "-U",
        disk,
        pair.primary.paths.replica({ ...d, version: d.imageVersion }, d.datastoreId),
      ]);
      expect(stdout).toContain("Images are identical");
    }
  }

  for (const point of chosen(diskPoints)) {
    it(`clone worker killed at ${point}: the desktop still becomes AVAILABLE and pristine`, async () => {
      const step = point.split(":")[0];
      // A fresh image each time, so that its replica is copied (and can be crashed in) here.
      const helper = agent(["clone-worker"]);
      const { imageId } = await readyImage(pair.primary, tenant.key, { blankSizeMiB: 16 });
      let poolId = "";
      if (step === "provision" || step === "replica") {
        await helper.stop();
        const recovered = await crashThenRecover(["clone-worker"], point, async () => {
          poolId = expectStatus(
            await api("POST", "/v1/pools", { name: point, imageId, size: 1 }),
            201,
          ).poolId;
        });
        await waitForCounts(pair.primary, tenant.key, poolId, { AVAILABLE: 1 }, 60_000);
        await recovered.stop();
      } else if (step === "refresh") {
        poolId = await readyPool(pair.primary, tenant.key, imageId, 1);
        await helper.stop();
        const s = expectStatus(await api("POST", `/v1/pools/${poolId}/logons`, { userId: "kim" }), 200);
        await run("qemu-io", [
          "-f",
          "qcow2",
          "-c",
          "write -P 0x5a 0 1M",
          await diskPathOf(pair.primary, tenant.tenantId, poolId, s.desktopId),
        ]);
        expectStatus(await api("POST", `/v1/sessions/${s.sessionId}/logoff`), 200);
        const recovered = await crashThenRecover(["clone-worker"], point);
        await waitForCounts(pair.primary, tenant.key, poolId, { AVAILABLE: 1 }, 60_000);
        await recovered.stop();
      } else {
        poolId = await readyPool(pair.primary, tenant.key, imageId, 1);
        const v2 = await readyVersion(pair.primary, tenant.key, imageId, { blankSizeMiB: 16 });
        await helper.stop();
        const recovered = await crashThenRecover(["clone-worker"], point, () =>
          api("POST", `/v1/pools/${poolId}/recompose`, { imageVersion: v2 }),
        );
        await waitFor(
          "recomposed",
          async () =>
            (await desktops(poolId)).every((d: any) => d.state === "AVAILABLE" && d.imageVersion === v2),
          60_000,
        );
        await recovered.stop();
      }
      await assertPristine(poolId);
    });
  }

  for (const point of chosen(dataPoints)) {
    it(`user-data or replication worker killed at ${point}: the session's change is committed and reaches DR`, async () => {
      const clones = agent(["clone-worker"]);
      const { imageId } = await readyImage(pair.primary, tenant.key, { blankSizeMiB: 16 });
      const poolId = await readyPool(pair.primary, tenant.key, imageId, 1);
      const userId = `u-${point.replace(/[^a-z]/g, "")}`;
      const doomedWorker = point.startsWith("commit") ? "user-data" : "replication";
      const steady = agent([doomedWorker === "user-data" ? "replication" : "user-data"]);
      let worker = agent([doomedWorker]);
      const s = expectStatus(await api("POST", `/v1/pools/${poolId}/logons`, { userId }), 200);
      await waitFor(
        "attached",
        async () => (await api("GET", `/v1/sessions/${s.sessionId}`)).body.userData?.state === "ATTACHED",
      );
      const ports = pair.primary.region.app.ports;
      const ref = { tenantId: tenant.tenantId, userId };
      await run("qemu-io", [
        "-f",
        "qcow2",
        "-c",
        "write -P 0x6b 0 1M",
        ports.userDataStore.overlayPath(ref, s.sessionId),
      ]);
      await worker.stop();
      const recovered = await crashThenRecover([doomedWorker], point, () =>
        api("POST", `/v1/sessions/${s.sessionId}/logoff`),
      );
      worker = recovered;
      await waitFor(
        "replicated to DR",
        async () => (await ports.userData.get(ref))?.replicatedVersion === 1,
        60_000,
      );
      const [mine, theirs] = await Promise.all([
        ports.userData.get(ref),
        pair.dr.region.app.ports.userData.get(ref),
      ]);
      expect(mine?.version).toBe(1);
      expect(theirs?.sha256).toBe(mine?.sha256);
      await Promise.all([worker.stop(), steady.stop(), clones.stop()]);
    });
  }
});

describe("every message delivered twice", () => {
  let r: TestRegion;
  let tenant: { tenantId: string; key: string };
  beforeAll(async () => {
    r = await startTestRegion({ duplicateDeliveries: true });
    tenant = await newTenant(r);
  });
  afterAll(async () => {
    await r?.stop();
  });

  it("a pool's whole life, with every job run twice at once, ends as it would have", async () => {
    const { imageId } = await readyImage(r, tenant.key, { blankSizeMiB: 16 });
    const poolId = await readyPool(r, tenant.key, imageId, 3);
    const api = (method: string, path: string, body?: unknown) =>
      r.api(method, path, { key: tenant.key, ...(body ? { body } : {}) });
    for (let round = 0; round < 2; round++) {
      const sessions = await Promise.all(
        ["a", "b", "c"].map(async (u) =>
          expectStatus(await api("POST", `/v1/pools/${poolId}/logons`, { userId: u }), 200),
        ),
      );
      expect(new Set(sessions.map((s) => s.desktopId)).size).toBe(3);
      for (const s of sessions) expectStatus(await api("POST", `/v1/sessions/${s.sessionId}/logoff`), 200);
      await waitForCounts(r, tenant.key, poolId, { AVAILABLE: 3 });
    }
    const v2 = await readyVersion(r, tenant.key, imageId, { blankSizeMiB: 16 });
    expectStatus(await api("POST", `/v1/pools/${poolId}/recompose`, { imageVersion: v2 }), 202);
    await waitFor("recomposed", async () => {
      const rc = expectStatus(await api("GET", `/v1/pools/${poolId}`), 200).recompose;
      return rc?.done === 3 && rc.pending === 0 && rc.failed === 0;
    });
    expectStatus(await api("DELETE", `/v1/pools/${poolId}`), 202);
    await waitFor("pool gone", async () => (await api("GET", `/v1/pools/${poolId}`)).status === 404);
  });
});

describe("DynamoDB throttling and 5xx", () => {
  let r: TestRegion;
  let proxy: Awaited<ReturnType<typeof startDynamoFaultProxy>>;
  let tenant: { tenantId: string; key: string };
  beforeAll(async () => {
    const { inject } = await import("vitest");
    proxy = await startDynamoFaultProxy(inject("dynamodbEndpoint"), {
      throttle: 0.05,
      errorBefore: 0.03,
      errorAfter: 0.03,
    });
    proxy.setActive(false);
    r = await startTestRegion({ dynamodbEndpoint: proxy.url });
    tenant = await newTenant(r);
  });
  afterAll(async () => {
    await r?.stop();
    await proxy?.stop();
  });

  it("logons and logoffs through a faulty DynamoDB lose nothing and double-assign nothing", async () => {
    const { imageId } = await readyImage(r, tenant.key, { blankSizeMiB: 16 });
    const poolId = await readyPool(r, tenant.key, imageId, 4);
    proxy.setActive(true);
    /** A client retries a 5xx, as the API's users do; every call here is idempotent. */
    const call = async (method: string, path: string, body?: unknown) => {
      for (let attempt = 0; ; attempt++) {
        const res = await r.api(method, path, { key: tenant.key, ...(body ? { body } : {}) });
        if (res.status < 500 || attempt >= 8) return res;
      }
    };
    for (let round = 0; round < 3; round++) {
      const users = ["p", "q", "r", "s", "t", "u"];
      const results = await Promise.all(
        users.map((u) => call("POST", `/v1/pools/${poolId}/logons`, { userId: u })),
      );
      const served = results.filter((x) => x.status === 200).map((x) => x.body);
      expect(served.length).toBe(4);
      expect(new Set(served.map((s) => s.desktopId)).size).toBe(4);
      expect(new Set(served.map((s) => s.userId)).size).toBe(4);
      for (const s of served)
        expect((await call("POST", `/v1/sessions/${s.sessionId}/logoff`)).status).toBe(200);
      await waitFor(
        "all free again",
        async () => {
          const got = await call("GET", `/v1/pools/${poolId}`);
          return got.status === 200 && got.body.desktopCounts.AVAILABLE === 4;
        },
        60_000,
      );
    }
    proxy.setActive(false);
    expect(proxy.counts.throttled + proxy.counts.failedBefore + proxy.counts.failedAfter).toBeGreaterThan(10);
    const report = await reconcile(r.region.app.ports, 0);
    expect(report.repaired["orphan-session"] ?? 0).toBe(0);
  });
});

describe("a full datastore and a failing qemu-img", () => {
  let r: TestRegion;
  let tenant: { tenantId: string; key: string };
  let mount: string | undefined;
  beforeAll(async () => {
    r = await startTestRegion({ reconcileEveryMs: 0 });
    tenant = await newTenant(r);
  });
  afterAll(async () => {
    await r?.stop();
    if (mount) await run("umount", [mount]).catch(() => undefined);
  });

  it.runIf(process.getuid?.() === 0)(
    "a datastore that fills up quarantines its desktops visibly and leaves no half-written file",
    async () => {
      mount = await mkdtemp(join(tmpdir(), "pristine-full-ds-"));
      await run("mount", ["-t", "tmpfs", "-o", "size=24m", "tmpfs", mount]);
      expectStatus(
        await r.api("POST", "/v1/admin/datastores", {
          key: r.operatorKey,
          body: { datastoreId: "tiny", path: mount, capacityGiB: 64 },
        }),
        201,
      );
      // An image of 48 MiB of data: its replica cannot fit in 24 MiB.
      const source = join(r.dataDir, "imports", tenant.tenantId, "big.qcow2");
      await mkdir(join(r.dataDir, "imports", tenant.tenantId), { recursive: true });
      await run("qemu-img", ["create", "-q", "-f", "qcow2", source, "64M"]);
      await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x33 0 48M", source]);
      const { imageId } = await readyImage(r, tenant.key, { path: source });
      const pool = expectStatus(
        await r.api("POST", "/v1/pools", {
          key: tenant.key,
          body: { name: "full", imageId, size: 2, datastoreIds: ["tiny"] },
        }),
        201,
      );
      await waitForCounts(r, tenant.key, pool.poolId, { ERROR: 2 }, 90_000);
      const items = expectStatus(
        await r.api("GET", `/v1/pools/${pool.poolId}/desktops`, { key: tenant.key }),
        200,
      ).items;
      for (const d of items) expect(d.error).toMatch(/ENOSPC|no space/i);
      const { stdout } = await run("df", ["--output=used", "-B1", mount]);
      // Nothing half-copied was left behind to keep the datastore full.
      expect(Number(stdout.trim().split("\n").pop())).toBeLessThan(1024 * 1024);
    },
  );

  it("qemu-img failing quarantines the desktop with the reason; once it works again, the reconciler replaces it", async () => {
    // A size no other test uses: a process makes the first overlay of each size with qemu-img (its
    // template), and the later ones from that template without it.
    const { imageId } = await readyImage(r, tenant.key, { blankSizeMiB: 23 });
    const shim = await mkdtemp(join(tmpdir(), "pristine-broken-qemu-"));
    await writeFile(
      join(shim, "qemu-img"),
      '#!/bin/sh\n[ "$1" = create ] && { echo \'qemu-img: broken on purpose\' >&2; exit 1; }\nexec /usr/bin/qemu-img "$@"\n',
    );
    await chmod(join(shim, "qemu-img"), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${shim}:${path}`;
    try {
      const pool = expectStatus(
        await r.api("POST", "/v1/pools", { key: tenant.key, body: { name: "broken", imageId, size: 1 } }),
        201,
      );
      await waitForCounts(r, tenant.key, pool.poolId, { ERROR: 1 }, 60_000);
      const [d] = expectStatus(
        await r.api("GET", `/v1/pools/${pool.poolId}/desktops`, { key: tenant.key }),
        200,
      ).items;
      expect(d.error).toMatch(/broken on purpose/);
      process.env.PATH = path;
      await reconcile(r.region.app.ports, 0);
      await waitForCounts(r, tenant.key, pool.poolId, { AVAILABLE: 1, ERROR: 0 }, 60_000);
    } finally {
      process.env.PATH = path;
      await rm(shim, { recursive: true, force: true });
    }
  });
});
