/**
 * The reconciler without scans (issue 11, point 5): it finds what crashes left behind through the
 * sparse watch index and partition queries, and the datastore sweep it asks for removes the disk
 * files nobody owns. The DynamoDB calls it makes are recorded on the real client's middleware stack.
 */
import { randomBytes } from "node:crypto";
import { copyFile, readdir, rm, utimes } from "node:fs/promises";
import { join } from "node:path";
import { CreateTableCommand, DeleteTableCommand } from "@aws-sdk/client-dynamodb";
import { DeleteCommand, PutCommand, QueryCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { afterEach, expect, inject, it } from "vitest";
import { documentClient, dynamoClient, ensureTable } from "../../shared/adapters/dynamodb/client.ts";
import { entities } from "../../shared/adapters/dynamodb/entities.ts";
import { keys, watch } from "../../shared/adapters/dynamodb/keys.ts";
import { dynamoRepositories } from "../../shared/adapters/dynamodb/repositories/index.ts";
import { tableSchema, watchIndex } from "../../shared/adapters/dynamodb/table-schema.ts";
import { upgradeTable } from "../../shared/adapters/dynamodb/upgrade.ts";
import type { UserData } from "../../shared/domain/dr-model.ts";
import type { Desktop, Session } from "../../shared/domain/model.ts";
import { reconcile } from "../../shared/domain/reconcile.ts";
import { expectStatus, recordingApp, useTenantRegion, waitFor, waitForCounts } from "./harness.ts";

const fx = useTenantRegion({ region: { reconcileEveryMs: 0, hypervisor: "none" }, poolSize: 4 });

/** A second process's app (the reconciler's own), whose DynamoDB client records the commands it sends. */
const recorders: ReturnType<typeof recordingApp>[] = [];
function recordingReconciler() {
  const recorder = recordingApp(fx.r.region.app.config);
  recorders.push(recorder);
  return recorder;
}
afterEach(async () => {
  for (const r of recorders.splice(0)) await r.close();
});

const hourAgo = () => new Date(Date.now() - 3600_000);

it("repairs a desktop a dead worker left REFRESHING, orphan delta files, a diskless desktop and a session whose desktop is gone, with no Scan", async () => {
  const { tenantId } = fx.tenant;
  const key = fx.tenant.key;
  const ports = fx.r.region.app.ports;
  const [a, b, c, d] = (await ports.desktops.list(tenantId, fx.poolId)).sort((x, y) =>
    x.desktopId.localeCompare(y.desktopId),
  );
  if (!a || !b || !c || !d) throw new Error("the pool has 4 desktops");
  const folder = fx.r.paths.poolFolder({ tenantId, poolId: fx.poolId, datastoreId: "ds-default" });

  // 1. A logoff whose worker died between its write and its job: the desktop waits REFRESHING for nobody.
  const ann = expectStatus(
    await fx.r.api("POST", `/v1/pools/${fx.poolId}/logons`, { key, body: { userId: "ann" } }),
    200,
  );
  const annSession = await ports.sessions.get(tenantId, ann.sessionId);
  if (!annSession) throw new Error("ann's session is missing");
  expect((await ports.sessions.end(annSession, new Date().toISOString(), "api")).outcome).toBe("ended");
  const stuck = await ports.desktops.get(tenantId, fx.poolId, ann.desktopId);
  expect(stuck?.state).toBe("REFRESHING");

  // 2. A session whose desktop was removed under it: only the user's lock still names it.
  const bob = expectStatus(
    await fx.r.api("POST", `/v1/pools/${fx.poolId}/logons`, { key, body: { userId: "bob" } }),
    200,
  );
  const bobDesktop = await ports.desktops.get(tenantId, fx.poolId, bob.desktopId);
  if (!bobDesktop) throw new Error("bob's desktop is missing");
  await ports.desktops.remove(bobDesktop);
  const bobDisk = fx.r.paths.desktop(bobDesktop);

  // 3. Orphan delta files: a desktop's long gone, and an old generation of a desktop at rest; one
  //    written after the reconciler's cutoff (a job's write in flight) is left alone.
  const free = [a, b, c, d].filter((x) => x.desktopId !== ann.desktopId && x.desktopId !== bob.desktopId);
  const [atRest, diskless] = free;
  if (!atRest || !diskless) throw new Error("two desktops are free");
  const current = fx.r.paths.desktop(atRest);
  const gone = join(folder, "dsk-gone.g3.qcow2");
  const oldGeneration = join(folder, `${atRest.desktopId}.qcow2`);
  const young = join(folder, "dsk-young.g1.qcow2");
  for (const f of [gone, oldGeneration, young]) await copyFile(current, f);
  for (const f of [gone, oldGeneration, bobDisk]) await utimes(f, hourAgo(), hourAgo());
  const future = new Date(Date.now() + 3600_000);
  await utimes(young, future, future);

  // 4. A free desktop whose disk is gone.
  await rm(fx.r.paths.desktop(diskless));

  // The reconciler, in its own process: every call it makes is recorded.
  const { app, calls } = recordingReconciler();
  const report = await reconcile(app.ports, 0, { datastoreIds: ["ds-default"] });

  const commands = new Set(calls.map((c) => c.command));
  expect(commands).toContain("QueryCommand");
  expect(commands).not.toContain("ScanCommand");
  expect(calls.filter((c) => c.index === "gsi2").length).toBeGreaterThan(0);
  expect(report.requeued["refresh-desktop"]).toBe(1);
  expect(report.requeued["sweep-datastore"]).toBe(1);
  expect(report.repaired["session-without-desktop"]).toBe(1);

  // The stuck desktop is refreshed, and back in the pool.
  await waitFor(
    "ann's desktop refreshed",
    async () => (await ports.desktops.get(tenantId, fx.poolId, ann.desktopId))?.state === "AVAILABLE",
    60_000,
  );
  // The sweep (run by the worker that serves the datastore) removes the nobody's files only.
  const names = async () => readdir(folder);
  await waitFor(
    "orphan files removed",
    async () => {
      const now = await names();
      return ![gone, oldGeneration, bobDisk].some((f) => now.includes(f.slice(folder.length + 1)));
    },
    60_000,
  );
  const left = await names();
  expect(left).toContain("dsk-young.g1.qcow2");
  expect(left).toContain(current.slice(folder.length + 1));

  // The diskless desktop was quarantined and replaced by a new one with a disk.
  await waitFor(
    "diskless desktop replaced",
    async () => !(await ports.desktops.get(tenantId, fx.poolId, diskless.desktopId)),
    60_000,
  );

  // Bob's session is ended, so he logs on again at once (his lock no longer blocks him).
  const bobNow = expectStatus(await fx.r.api("GET", `/v1/sessions/${bob.sessionId}`, { key }), 200);
  expect(bobNow).toMatchObject({ state: "ENDED", endedBy: "desktop-gone" });
  const bobAgain = expectStatus(
    await fx.r.api("POST", `/v1/pools/${fx.poolId}/logons`, { key, body: { userId: "bob" } }),
    200,
  );
  expect(bobAgain.sessionId).not.toBe(bob.sessionId);
  expect(bobAgain.reconnected ?? false).toBe(false);
  await waitForCounts(fx.r, key, fx.poolId, { AVAILABLE: 2, ASSIGNED: 1 });

  // Each repair is counted in the tenant's figures.
  await app.metrics.flush();
  await waitFor(
    "repairs counted",
    async () => {
      const body = expectStatus(await fx.r.api("GET", "/v1/metrics?minutes=10", { key }), 200);
      const total = (name: string) =>
        (body.series as { name: string; points: { sum: number }[] }[])
          .find((s) => s.name === name)
          ?.points.reduce((n, p) => n + p.sum, 0) ?? 0;
      return (
        total("repairedStuckDesktops") === 1 &&
        total("repairedOrphanSessions") === 1 &&
        // At least the three planted: the refreshed desktop's old generation may be swept before its job removes it.
        total("repairedOrphanDisks") >= 3 &&
        total("repairedDisklessDesktops") === 1
      );
    },
    30_000,
  );
  await rm(young);
});

it("finds a stuck desktop through the watch index only once its wait is older than the stale period", async () => {
  const { tenantId } = fx.tenant;
  const ports = fx.r.region.app.ports;
  const s = expectStatus(
    await fx.r.api("POST", `/v1/pools/${fx.poolId}/logons`, { key: fx.tenant.key, body: { userId: "cid" } }),
    200,
  );
  const session = await ports.sessions.get(tenantId, s.sessionId);
  if (!session) throw new Error("cid's session is missing");
  await ports.sessions.end(session, new Date().toISOString(), "api");
  const { app } = recordingReconciler();
  // Fresh: a job may still be on its way. The datastore was swept less than a stale period ago.
  expect(await ports.datastores.takeTurn("sweep:ds-default", new Date(), 0)).toBe(true);
  const fresh = await reconcile(app.ports, 15 * 60_000, { datastoreIds: ["ds-default"] });
  expect(fresh.requeued["refresh-desktop"] ?? 0).toBe(0);
  expect(fresh.requeued["sweep-datastore"] ?? 0).toBe(0);
  // Stale: its job is sent again, once per stale period (the re-send is its new wait).
  expect((await reconcile(app.ports, 0)).requeued["refresh-desktop"]).toBe(1);
  await waitFor(
    "cid's desktop refreshed",
    async () => (await ports.desktops.get(tenantId, fx.poolId, s.desktopId))?.state === "AVAILABLE",
    60_000,
  );
  // Back at rest, it has left the index: nothing to re-send.
  expect((await reconcile(app.ports, 0)).requeued["refresh-desktop"] ?? 0).toBe(0);
});

it("a table made before the watch index gets it on start, and its waiting items are found through it", async () => {
  const doc = documentClient(dynamoClient(inject("dynamodbEndpoint"), "us-east-1"));
  const TableName = `it-upgrade-${randomBytes(4).toString("hex")}`;
  // The table as the previous version made it: the free index only.
  const free = tableSchema.indexes[0];
  if (!free) throw new Error("the schema has its free index");
  await doc.send(
    new CreateTableCommand({
      TableName,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: ["pk", "sk", free.partitionKey, free.sortKey].map((AttributeName) => ({
        AttributeName,
        AttributeType: "S",
      })),
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: free.name,
          KeySchema: [
            { AttributeName: free.partitionKey, KeyType: "HASH" },
            { AttributeName: free.sortKey, KeyType: "RANGE" },
          ],
          Projection: { ProjectionType: "ALL" },
        },
      ],
    }),
  );
  const old = hourAgo().toISOString();
  const base = { tenantId: "ten-old", poolId: "pool-old", datastoreId: "ds-default", updatedAt: old };
  const withoutWatch = (item: Record<string, unknown>) => {
    const { [watchIndex.pk]: _pk, [watchIndex.sk]: _sk, ...rest } = item;
    return rest;
  };
  const stuck = { ...base, desktopId: "dsk-stuck", state: "PROVISIONING" } as Desktop;
  const atRest = { ...base, desktopId: "dsk-rest", state: "AVAILABLE" } as Desktop;
  const lock = {
    tenantId: "ten-old",
    poolId: "pool-old",
    desktopId: "dsk-gone",
    userId: "dan",
    sessionId: "ses-x.pool-old.dsk-gone",
    state: "ACTIVE",
    datastoreId: "ds-default",
    startedAt: old,
  } as Session;
  for (const item of [
    entities.desktop.toItem(stuck),
    entities.desktop.toItem(atRest),
    entities.userLock.toItem(lock),
  ])
    await doc.send(new PutCommand({ TableName, Item: withoutWatch(item) }));

  await ensureTable(doc, TableName);

  const repos = dynamoRepositories(doc, TableName);
  const cutoff = new Date().toISOString();
  expect((await repos.desktops.listStuck(cutoff)).map((d) => d.desktopId)).toEqual(["dsk-stuck"]);
  expect((await repos.sessions.listLocksBefore(cutoff)).map((s) => s.sessionId)).toEqual([lock.sessionId]);
  // A second start finds nothing to do.
  expect(await upgradeTable(doc, TableName)).toEqual({ added: [], backfilled: 0 });
  await doc.send(new DeleteTableCommand({ TableName }));
});

it("users' data behind replication: older items get their watch keys on start, once; a commit adds them, the peer's verification takes them away", async () => {
  const doc = documentClient(dynamoClient(inject("dynamodbEndpoint"), "us-east-1"));
  const TableName = `it-behind-${randomBytes(4).toString("hex")}`;
  await ensureTable(doc, TableName);
  // A table the previous version made: the watch index is there, users' data never in it.
  await doc.send(new DeleteCommand({ TableName, Key: keys.schemaMarker }));
  const old = hourAgo().toISOString();
  const user = (userId: string, version: number, replicatedVersion: number): UserData => ({
    tenantId: "ten-dr",
    userId,
    version,
    replicatedVersion,
    sha256: "0".repeat(64),
    sizeBytes: 1024,
    lastChangeAt: old,
    createdAt: old,
  });
  const behind = user("una", 2, 1);
  for (const u of [behind, user("vic", 1, 1)]) {
    const { [watchIndex.pk]: _pk, [watchIndex.sk]: _sk, ...item } = entities.userData.toItem(u);
    await doc.send(new PutCommand({ TableName, Item: item }));
  }

  expect(await upgradeTable(doc, TableName)).toEqual({ added: [], backfilled: 1 });
  expect(await upgradeTable(doc, TableName)).toEqual({ added: [], backfilled: 0 });
  const repos = dynamoRepositories(doc, TableName);
  // What listBehind answers, and what the index holds (a user that caught up leaves it).
  const inIndex = async () => {
    const pages = await Promise.all(
      watch.partitions("BEHIND").map((p) =>
        doc.send(
          new QueryCommand({
            TableName,
            IndexName: watchIndex.name,
            KeyConditionExpression: "#wpk = :p",
            ExpressionAttributeNames: { "#wpk": watchIndex.pk },
            ExpressionAttributeValues: { ":p": p },
          }),
        ),
      ),
    );
    return pages.flatMap((page) => page.Items ?? []).map((i) => String(i.userId));
  };
  const behindNow = async () => {
    const listed = (await repos.userData.listBehind(new Date().toISOString())).map((u) => u.userId);
    expect(await inIndex()).toEqual(listed);
    return listed;
  };
  expect(await behindNow()).toEqual(["una"]);

  // The peer verifies una's version 2: she leaves the index.
  // (No change record of hers is here: the acknowledgement only moves her record.)
  await repos.userData.markReplicated(behind, 2, "0".repeat(64), new Date().toISOString());
  expect(await behindNow()).toEqual([]);

  // vic commits version 2 here: he is behind until the peer verifies it.
  const vic = { tenantId: "ten-dr", userId: "vic" };
  expect(await repos.userData.attach(vic, "ses-v", 1, old)).toBe(true);
  const committedAt = new Date().toISOString();
  const change = { ...vic, version: 2, sha256: "1".repeat(64), deltaBytes: 1, origin: "here", committedAt };
  expect(await repos.userData.recordChange(change, "ses-v")).toBe(true);
  expect(await behindNow()).toEqual(["vic"]);
  // Behind since just now: not before an hour-old cutoff.
  expect(await repos.userData.listBehind(hourAgo().toISOString())).toEqual([]);
  await repos.userData.markReplicated(vic, 2, change.sha256, new Date().toISOString());
  expect(await behindNow()).toEqual([]);
  await doc.send(new DeleteTableCommand({ TableName }));
});

it("puts a leaked reservation right once the same leak is found twice, never a count taken while it moved", async () => {
  const ports = fx.r.region.app.ports;
  const { app } = recordingReconciler();
  const desktopBytes = async () => {
    let sum = 0;
    for (const pool of await ports.pools.list(fx.tenant.tenantId))
      for (const d of await ports.desktops.list(fx.tenant.tenantId, pool.poolId))
        if (d.datastoreId === "ds-default") sum += d.provisionedBytes ?? 0;
    return sum;
  };
  // Settled: no job in flight changes which desktops exist while the counter is compared with them.
  await waitFor(
    "the pool at rest",
    async () =>
      (await ports.desktops.list(fx.tenant.tenantId, fx.poolId)).every((d) =>
        ["AVAILABLE", "ASSIGNED"].includes(d.state),
      ),
    60_000,
  );
  const truth = await desktopBytes();
  expect(await ports.datastores.provisionedBytes("ds-default")).toBe(truth);
  // What a pool write leaves when its worker dies after the reservation, before its desktops.
  const leak = async (bytes: number) =>
    documentClient(fx.r.region.app.dynamodb).send(
      new UpdateCommand({
        TableName: fx.r.region.app.config.tableName,
        Key: keys.datastoreUsage("ds-default"),
        UpdateExpression: "ADD provisionedBytes :b",
        ExpressionAttributeValues: { ":b": bytes },
      }),
    );
  await leak(5 * 1024 ** 3);
  const recount = async () =>
    (await reconcile(app.ports, 0, { datastoreIds: ["ds-default"] })).repaired["reservation-counter"] ?? 0;
  // First seen: only noted (it could be a pool being written at that moment).
  expect(await recount()).toBe(0);
  // The counter moved since (another reservation): the note is not confirmed, a new one is taken.
  await leak(1024 ** 3);
  expect(await recount()).toBe(0);
  expect(await ports.datastores.provisionedBytes("ds-default")).toBe(truth + 6 * 1024 ** 3);
  // The same leak again, with nothing moved: put right.
  expect(await recount()).toBe(1);
  expect(await ports.datastores.provisionedBytes("ds-default")).toBe(truth);
  expect(await recount()).toBe(0);
});
