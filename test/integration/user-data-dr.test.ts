import { PurgeQueueCommand } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import { s3Client, s3PeerRegion } from "../../shared/adapters/s3/replication-bucket.ts";
import { sendJson } from "../../shared/adapters/sqs/queue.ts";
import { contentSha256 } from "../../shared/adapters/storage/content-checksum.ts";
import { reconcile } from "../../shared/domain/reconcile.ts";
import { replicationKeys } from "../../shared/messages/replication.ts";
import {
  changeUserData,
  holdsPattern,
  replicatedFrom,
  runDrill,
  useRegionPairWithPool,
  userDataDisk,
  waitForDrained,
} from "./dr-harness.ts";
import { expectStatus, queueDepth, recordingApp, type TestRegion, waitFor } from "./harness.ts";

const fx = useRegionPairWithPool(3);
const ref = (userId: string) => ({ tenantId: fx.tenant.tenantId, userId });
const diskOf = (r: TestRegion, userId: string, version: number) =>
  userDataDisk(r, fx.tenant.tenantId, userId, version);

/** Logs a user on, writes 1 MiB of `pattern` at `offset` into their data disk, logs off. */
const session = (r: TestRegion, userId: string, pattern: number, offset: string, pool = fx.poolId) =>
  changeUserData(r, fx.tenant, pool, userId, { pattern, offset });

const replicated = (r: TestRegion, userId: string, version: number) =>
  replicatedFrom(r, fx.tenant.key, userId, version, 60_000);

describe("user data and replication", () => {
  it("a session's change is committed, shipped as a delta and verified in DR by content checksum", async () => {
    await session(fx.pair.primary, "alice", 0x5a, "0");
    await replicated(fx.pair.primary, "alice", 1);
    const [p, d] = await Promise.all([
      fx.pair.primary.region.app.ports.userData.get(ref("alice")),
      fx.pair.dr.region.app.ports.userData.get(ref("alice")),
    ]);
    expect(p?.version).toBe(1);
    expect(d?.version).toBe(1);
    expect(d?.sha256).toBe(p?.sha256);
    expect(await contentSha256(diskOf(fx.pair.dr, "alice", 1))).toBe(p?.sha256);
    expect(await holdsPattern(diskOf(fx.pair.dr, "alice", 1), 0x5a, "0")).toBe(true);
    const status = expectStatus(
      await fx.pair.primary.api("GET", "/v1/dr/replication", { key: fx.tenant.key }),
      200,
    );
    expect(status.pendingChanges).toBe(0);
    // A 1 MiB change ships as about 1 MiB, not as the 64 MiB disk.
    expect(status.bytesShipped).toBeLessThan(1.5 * 1024 * 1024);
  });

  it("with DR unreachable the backlog grows; duplicated and reordered deliveries are applied once, in order", async () => {
    fx.pair.proxy.cut();
    for (const [i, pattern] of [0x11, 0x22, 0x33].entries())
      await session(fx.pair.primary, "bob", pattern, `${i}M`);
    await waitFor(
      "bob's 3 commits",
      async () => (await fx.pair.primary.region.app.ports.userData.get(ref("bob")))?.version === 3,
    );
    const during = expectStatus(
      await fx.pair.primary.api("GET", "/v1/dr/replication", { key: fx.tenant.key }),
      200,
    );
    expect(during.pendingChanges).toBe(3);
    expect(during.oldestPendingAgeMs).toBeGreaterThan(0);
    expect((await fx.pair.dr.region.app.ports.userData.get(ref("bob")))?.version ?? 0).toBe(0);

    // Deliver the applies to DR directly, newest first and twice: DR must wait and apply each once.
    const app = fx.pair.primary.region.app;
    const peerQueue = app.config.dr?.peer?.replicationQueueUrl as string;
    const sizeBytes = app.config.dr?.userDataSizeBytes as number;
    // Straight to the DR bucket and queue (same fauxqs), around the cut proxy.
    const s3 = s3Client(app.config.endpoints.sqs, "us-east-1");
    const peer = s3PeerRegion({
      name: "dr",
      s3,
      bucket: app.config.dr?.peer?.bucket as string,
      sqs: app.sqs,
      queueUrl: peerQueue,
    });
    const applies = [];
    for (const version of [3, 2, 1]) {
      const change = await app.ports.userData.getChange(ref("bob"), version);
      const key = replicationKeys.userDataDelta(fx.tenant.tenantId, "bob", version);
      await peer.putFile(key, app.ports.userDataStore.deltaPath(ref("bob"), version));
      applies.push({
        kind: "apply-user-data",
        ...ref("bob"),
        version,
        sha256: change?.sha256,
        sizeBytes,
        key,
        committedAt: change?.committedAt,
        sourceRegion: "primary",
      });
    }
    await sendJson(app.sqs, peerQueue, [...applies, ...applies]);
    await waitFor(
      "DR at bob v3",
      async () => (await fx.pair.dr.region.app.ports.userData.get(ref("bob")))?.version === 3,
    );
    s3.destroy();

    // The link comes back: the primary's own (retried) ships arrive as duplicates, and are acknowledged.
    fx.pair.proxy.restore();
    await replicated(fx.pair.primary, "bob", 3);
    await waitForDrained(fx.pair.dr, fx.pair.dr.region.dr.replication.url);
    const p = await app.ports.userData.get(ref("bob"));
    const d = await fx.pair.dr.region.app.ports.userData.get(ref("bob"));
    expect(d?.version).toBe(3);
    expect(d?.sha256).toBe(p?.sha256);
    expect(await contentSha256(diskOf(fx.pair.dr, "bob", 3))).toBe(p?.sha256);
    for (const [i, pattern] of [0x11, 0x22, 0x33].entries())
      expect(await holdsPattern(diskOf(fx.pair.dr, "bob", 3), pattern, `${i}M`)).toBe(true);
    const after = expectStatus(
      await fx.pair.primary.api("GET", "/v1/dr/replication", { key: fx.tenant.key }),
      200,
    );
    expect(after.pendingChanges).toBe(0);
    // Both regions hold version 3 as the same chain of deltas (3 on 2 on 1 on the blank 0): each
    // version costs its change; nothing else is kept.
    for (const r of [fx.pair.primary, fx.pair.dr]) {
      const versions = await r.region.app.ports.userDataStore.listVersions(ref("bob"));
      expect(versions.sort((a, b) => a.version - b.version)).toEqual([
        { version: 0 },
        { version: 1, backingVersion: 0 },
        { version: 2, backingVersion: 1 },
        { version: 3, backingVersion: 2 },
      ]);
    }
  });

  it("a drill logs the users on in DR with their replicated data, reports RPO/RTO and cleans up", async () => {
    await waitFor("pool config in DR", async () => {
      const s = await fx.pair.dr.api("GET", "/v1/dr/replication", { key: fx.tenant.key });
      return s.status === 200 && s.body.dr.standbyPools.includes(fx.poolId);
    });
    const bad = await fx.pair.dr.api("POST", "/v1/dr/drills", {
      key: fx.tenant.key,
      body: { pools: ["pool-nope"] },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe("pools[0]");
    const report = await runDrill(fx.pair.dr, fx.tenant.key, [fx.poolId]);
    expect(report).toMatchObject({
      state: "SUCCEEDED",
      usersPlanned: 2,
      usersLoggedOn: 2,
      usersVerified: 2,
      usersFailed: [],
    });
    expect(report.rtoAllLogonsMs).toBeGreaterThanOrEqual(report.rtoFirstLogonMs);
    expect(report.rpoMs).toBeGreaterThanOrEqual(0);
    expect(report.bytesShipped).toBeGreaterThan(0);
    await waitFor("drill pools removed", async () => {
      const pools = (await fx.pair.dr.api("GET", "/v1/pools", { key: fx.tenant.key })).body.items;
      return pools.length === 0;
    });
    // The drill changed no user data, here or in the primary.
    expect((await fx.pair.dr.region.app.ports.userData.get(ref("alice")))?.version).toBe(1);
    expect((await fx.pair.dr.region.app.ports.userData.get(ref("alice")))?.attachedSessionId).toBeUndefined();
    expect((await fx.pair.primary.region.app.ports.userData.get(ref("alice")))?.version).toBe(1);
  });

  it("failover serves users in DR with their data; failback brings DR's changes home first", async () => {
    expectStatus(await fx.pair.dr.api("POST", "/v1/dr/failover", { key: fx.tenant.key }), 202);
    await waitFor("primary refuses logons", async () => {
      const res = await fx.pair.primary.api("POST", `/v1/pools/${fx.poolId}/logons`, {
        key: fx.tenant.key,
        body: { userId: "zed" },
      });
      return res.status === 409 && res.body.type.endsWith("tenant-failed-over");
    });
    await waitFor("DR pool ready", async () => {
      const res = await fx.pair.dr.api("GET", `/v1/pools/${fx.poolId}`, { key: fx.tenant.key });
      return res.body.desktopCounts?.AVAILABLE === 3;
    });
    await session(fx.pair.dr, "alice", 0x77, "8M");
    await replicated(fx.pair.dr, "alice", 2);
    expect((await fx.pair.primary.region.app.ports.userData.get(ref("alice")))?.version).toBe(2);

    expectStatus(await fx.pair.dr.api("POST", "/v1/dr/failback", { key: fx.tenant.key }), 202);
    await waitFor("primary serves again", async () => {
      const res = await fx.pair.primary.api("POST", `/v1/pools/${fx.poolId}/logons`, {
        key: fx.tenant.key,
        body: { userId: "alice" },
      });
      if (res.status !== 200) return false;
      await waitFor("alice attached in primary", async () => {
        const s = await fx.pair.primary.api("GET", `/v1/sessions/${res.body.sessionId}`, {
          key: fx.tenant.key,
        });
        return s.body.userData?.state === "ATTACHED" && s.body.userData.version === 2;
      });
      const overlay = fx.pair.primary.region.app.ports.userDataStore.overlayPath(
        ref("alice"),
        res.body.sessionId,
      );
      expect(await holdsPattern(overlay, 0x77, "8M")).toBe(true);
      expect(await holdsPattern(overlay, 0x5a, "0")).toBe(true);
      return true;
    });
  });

  it("a change whose replication messages were lost is shipped again by the reconciler, which scans nothing", async () => {
    fx.pair.proxy.cut();
    await session(fx.pair.primary, "erin", 0x33, "0");
    await waitFor(
      "erin's change committed",
      async () => (await fx.pair.primary.region.app.ports.userData.get(ref("erin")))?.version === 1,
    );
    // The messages are gone (as if dead-lettered while DR was away); only the table remembers. A
    // message a worker holds at the purge (failing against the cut link) survives it: purged again
    // until none is left, waiting or in flight.
    const queueUrl = fx.pair.primary.region.dr.replication.url;
    await waitFor("erin's ship purged", async () => {
      await fx.pair.primary.region.app.sqs.send(new PurgeQueueCommand({ QueueUrl: queueUrl }));
      const { waiting, inFlight } = await queueDepth(fx.pair.primary, queueUrl);
      return waiting === 0 && inFlight === 0;
    });
    fx.pair.proxy.restore();
    await waitForDrained(fx.pair.primary, fx.pair.primary.region.dr.replication.url);
    expect((await fx.pair.primary.region.app.ports.userData.get(ref("erin")))?.replicatedVersion).toBe(0);

    // The reconciler (in its own process, with the peer configured) finds it with queries only.
    const reconciler = recordingApp(fx.pair.primary.region.app.config);
    const report = await reconcile(reconciler.app.ports, 0).finally(reconciler.close);
    expect(report.requeued["ship-user-data"]).toBe(1);
    expect(reconciler.calls.map((c) => c.command)).not.toContain("ScanCommand");
    expect(reconciler.calls.filter((c) => c.index === "gsi2").length).toBeGreaterThan(0);
    await replicated(fx.pair.primary, "erin", 1);
    const [p, d] = await Promise.all([
      fx.pair.primary.region.app.ports.userData.get(ref("erin")),
      fx.pair.dr.region.app.ports.userData.get(ref("erin")),
    ]);
    expect(d?.sha256).toBe(p?.sha256);
    expect(await holdsPattern(diskOf(fx.pair.dr, "erin", 1), 0x33, "0")).toBe(true);
  });
});
