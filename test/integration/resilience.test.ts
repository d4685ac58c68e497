import { appendFile, stat, truncate } from "node:fs/promises";
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { expect, it } from "vitest";
import { documentClient } from "../../shared/adapters/dynamodb/client.ts";
import { keys } from "../../shared/adapters/dynamodb/keys.ts";
import { sendJson } from "../../shared/adapters/sqs/queue.ts";
import { newSessionId } from "../../shared/domain/ids.ts";
import { reconcile } from "../../shared/domain/reconcile.ts";
import {
  diskPathOf,
  expectStatus,
  queueDepth,
  readyImage,
  readyPool,
  run,
  useTenantRegion,
  waitFor,
  waitForCounts,
  waitUntilDrained,
} from "./harness.ts";

const fx = useTenantRegion({ region: { reconcileEveryMs: 0 }, poolSize: 2 });

const disk = (desktopId: string) => diskPathOf(fx.r, fx.tenant.tenantId, fx.poolId, desktopId);
const replica = () =>
  fx.r.paths.replica({ tenantId: fx.tenant.tenantId, imageId: fx.imageId, version: 1 }, "ds-default");

it("a logoff that died before sending its refresh job is repaired by the reconciler", async () => {
  const s = expectStatus(
    await fx.r.api("POST", `/v1/pools/${fx.poolId}/logons`, { key: fx.tenant.key, body: { userId: "ann" } }),
    200,
  );
  await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x11 0 1M", await disk(s.desktopId)]);
  // The session ends in the table, but the process dies before the refresh job is sent.
  const session = await fx.r.region.app.ports.sessions.get(fx.tenant.tenantId, s.sessionId);
  if (!session) throw new Error("session missing");
  expect((await fx.r.region.app.ports.sessions.end(session, new Date().toISOString(), "api")).outcome).toBe(
    "ended",
  );
  await waitForCounts(fx.r, fx.tenant.key, fx.poolId, { REFRESHING: 1 });

  const report = await reconcile(fx.r.region.app.ports, 0);
  expect(report.requeued["refresh-desktop"]).toBe(1);
  await waitForCounts(fx.r, fx.tenant.key, fx.poolId, { AVAILABLE: 2 });
  expect((await run("qemu-img", ["compare", "-U", await disk(s.desktopId), replica()])).stdout).toContain(
    "identical",
  );
});

it("redelivered jobs change nothing: a provision or refresh job for an assigned desktop leaves the user's disk alone", async () => {
  const s = expectStatus(
    await fx.r.api("POST", `/v1/pools/${fx.poolId}/logons`, { key: fx.tenant.key, body: { userId: "ben" } }),
    200,
  );
  await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x22 0 1M", await disk(s.desktopId)]);
  const ref = { tenantId: fx.tenant.tenantId, poolId: fx.poolId, desktopId: s.desktopId };
  await sendJson(fx.r.region.app.sqs, fx.r.region.queues.cloneJobs.url, [
    { kind: "provision-desktop", ...ref },
    { kind: "refresh-desktop", ...ref, sessionId: "ses-old.x.y" },
    { kind: "provision-desktop", ...ref },
  ]);
  await waitUntilDrained(fx.r, fx.r.region.queues.cloneJobs.url);
  // The user's write is still there: the disk still differs from the replica.
  await expect(run("qemu-img", ["compare", "-U", await disk(s.desktopId), replica()])).rejects.toMatchObject({
    code: 1,
  });
  expect((await fx.r.api("GET", `/v1/sessions/${s.sessionId}`, { key: fx.tenant.key })).body.state).toBe(
    "ACTIVE",
  );
});

it("a malformed job goes to the dead-letter queue instead of blocking the worker", async () => {
  await sendJson(fx.r.region.app.sqs, fx.r.region.queues.cloneJobs.url, [{ kind: "format-everything" }]);
  await waitFor(
    "message in the DLQ",
    async () => (await queueDepth(fx.r, fx.r.region.queues.cloneJobs.dlqUrl)).waiting === 1,
  );
});

it("a desktop whose disk cannot be made is quarantined after retries, then replaced by the reconciler", async () => {
  const image = await readyImage(fx.r, fx.tenant.key);
  const imageFile = fx.r.paths.image({
    tenantId: fx.tenant.tenantId,
    imageId: image.imageId,
    version: image.version,
  });
  const { size } = await stat(imageFile);
  // The image store's copy no longer matches its checksum: every replica copy is refused.
  await appendFile(imageFile, "bit rot");
  const pool = expectStatus(
    await fx.r.api("POST", "/v1/pools", {
      key: fx.tenant.key,
      body: { name: "doomed", imageId: image.imageId, size: 1 },
    }),
    201,
  );
  await waitForCounts(fx.r, fx.tenant.key, pool.poolId, { ERROR: 1 });
  const [broken] = (await fx.r.api("GET", `/v1/pools/${pool.poolId}/desktops`, { key: fx.tenant.key })).body
    .items;
  expect(broken.error).toMatch(/sha256 mismatch/);

  await truncate(imageFile, size);
  const report = await reconcile(fx.r.region.app.ports, 0);
  expect(report.requeued["replace-desktop"]).toBe(1);
  await waitForCounts(fx.r, fx.tenant.key, pool.poolId, { AVAILABLE: 1, ERROR: 0 });
  const [fresh] = (await fx.r.api("GET", `/v1/pools/${pool.poolId}/desktops`, { key: fx.tenant.key })).body
    .items;
  expect(fresh.desktopId).not.toBe(broken.desktopId);
});

it("a logon that died between taking the user's lock and claiming its desktop does not lock the user out", async () => {
  const lonePool = await readyPool(fx.r, fx.tenant.key, fx.imageId, 1);
  const [desktop] = (await fx.r.api("GET", `/v1/pools/${lonePool}/desktops`, { key: fx.tenant.key })).body
    .items;
  // What the dead logon left: the user's lock naming a session its desktop never took.
  const orphan = {
    tenantId: fx.tenant.tenantId,
    sessionId: newSessionId(lonePool, desktop.desktopId),
    poolId: lonePool,
    desktopId: desktop.desktopId,
    userId: "zoe",
    state: "ACTIVE",
    startedAt: new Date(Date.now() - 3600_000).toISOString(),
  };
  await documentClient(fx.r.region.app.dynamodb).send(
    new PutCommand({
      TableName: fx.r.region.app.config.tableName,
      Item: { ...keys.userLock(fx.tenant.tenantId, lonePool, "zoe"), entity: "userLock", ...orphan },
    }),
  );
  const s = expectStatus(
    await fx.r.api("POST", `/v1/pools/${lonePool}/logons`, { key: fx.tenant.key, body: { userId: "zoe" } }),
    200,
  );
  expect(s.reconnected).toBe(false);
  expect(s.sessionId).not.toBe(orphan.sessionId);
  expect((await fx.r.api("GET", `/v1/sessions/${orphan.sessionId}`, { key: fx.tenant.key })).status).toBe(
    404,
  );
  const again = expectStatus(
    await fx.r.api("POST", `/v1/pools/${lonePool}/logons`, { key: fx.tenant.key, body: { userId: "zoe" } }),
    200,
  );
  expect(again.sessionId).toBe(s.sessionId);
});
