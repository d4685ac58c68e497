/**
 * Deletions replicate like creations: a pool or an image version deleted in the primary is gone
 * in the DR region (its standby list, drills, failover, image store and bucket), and stays gone
 * when configuration messages arrive twice, late, or before the pool they delete.
 */
import { access } from "node:fs/promises";
import { HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, expect, it } from "vitest";
import { s3Client } from "../../shared/adapters/s3/replication-bucket.ts";
import { sendJson } from "../../shared/adapters/sqs/queue.ts";
import { applyConfig } from "../../shared/domain/replication-config.ts";
import { replicationKeys } from "../../shared/messages/replication.ts";
import { type RegionPair, runDrill, startRegionPair, waitForDrained } from "./dr-harness.ts";
import { expectStatus, newTenant, readyImage, readyVersion, waitFor } from "./harness.ts";

/** How long a change may take to reach DR before the test gives up (replication takes seconds). */
const deadlineMs = 45_000;

let pair: RegionPair;
let tenant: { tenantId: string; key: string };
let imageId: string;
let deletedVersion: number;
/** On the version that is deleted later; drilled in DR (which leaves replicas there), then deleted. */
let goneId: string;
/** Never deleted: what a failover must bring up. */
let keptId: string;
/** Created and deleted while DR was unreachable: DR hears of its deletion before its creation. */
let neverSeenId: string;
let s3: S3Client;
/** The replica files the drill left in DR. */
let replicaFiles: string[] = [];

const drBucket = () => pair.dr.region.app.config.dr?.replicationBucket as string;
const drQueue = () => pair.dr.region.dr.replication.url;

async function newPool(name: string, imageVersion: number) {
  const pool = expectStatus(
    await pair.primary.api("POST", "/v1/pools", {
      key: tenant.key,
      body: { name, imageId, imageVersion, size: 1 },
    }),
    201,
  );
  return pool.poolId as string;
}

async function standbyInDr(): Promise<string[]> {
  const status = expectStatus(await pair.dr.api("GET", "/v1/dr/replication", { key: tenant.key }), 200);
  return status.dr.standbyPools;
}

/** The keys of every configuration document the primary shipped into DR's bucket, oldest first. */
async function configKeys(): Promise<string[]> {
  const out = await s3.send(
    new ListObjectsV2Command({ Bucket: drBucket(), Prefix: `config/${tenant.tenantId}/` }),
  );
  return (out.Contents ?? []).map((o) => o.Key as string).sort();
}

/** Delivers `apply-config` for these documents to DR, newest first and each twice; waits until done. */
async function redeliver(keys: string[]) {
  const messages = [...keys]
    .reverse()
    .map((key) => ({ kind: "apply-config", tenantId: tenant.tenantId, key, sourceRegion: "primary" }));
  await sendJson(pair.dr.region.app.sqs, drQueue(), [...messages, ...messages]);
  await waitForDrained(pair.dr, drQueue());
}

async function inDrBucket(key: string) {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: drBucket(), Key: key }));
    return true;
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw err;
  }
}

beforeAll(async () => {
  pair = await startRegionPair();
  s3 = s3Client(
    pair.dr.region.app.config.endpoints.s3 ?? pair.dr.region.app.config.endpoints.sqs,
    "us-east-1",
  );
  tenant = await newTenant(pair.primary);
  ({ imageId } = await readyImage(pair.primary, tenant.key));
  deletedVersion = await readyVersion(pair.primary, tenant.key, imageId, { blankSizeMiB: 64 });
  goneId = await newPool("gone", deletedVersion);
  keptId = await newPool("kept", 1);
  await waitFor(
    "both pools and both image versions in DR",
    async () => {
      const image = await pair.dr.api("GET", `/v1/images/${imageId}`, { key: tenant.key });
      const versions = (image.body?.versions ?? []).filter((v: any) => v.state === "READY").length;
      const standby = await standbyInDr();
      return versions === 2 && standby.includes(goneId) && standby.includes(keptId);
    },
    90_000,
    250,
  );
}, 180_000);
afterAll(async () => {
  s3?.destroy();
  await pair?.stop();
});

/** DR's replicas of the deleted version: records and files. */
async function drReplicasOfDeletedVersion() {
  const ref = { tenantId: tenant.tenantId, imageId, version: deletedVersion };
  const records = await pair.dr.region.app.ports.replicas.list(tenant.tenantId, imageId, deletedVersion);
  const files = [];
  for (const r of records) files.push(pair.dr.paths.replica(ref, r.datastoreId));
  return { records, files };
}

it("a pool deleted in the primary leaves DR's standby list and cannot be drilled", async () => {
  // A drill before the deletion: DR makes the version's replica on its datastore and keeps it.
  await runDrill(pair.dr, tenant.key, [goneId]);
  await waitFor(
    "the drill's pool removed in DR",
    async () => {
      const pools = expectStatus(await pair.dr.api("GET", "/v1/pools", { key: tenant.key }), 200).items;
      return pools.length === 0;
    },
    deadlineMs,
    250,
  );
  const { records, files } = await drReplicasOfDeletedVersion();
  expect(records.length).toBeGreaterThan(0);
  for (const f of files) await access(f);
  replicaFiles = files;

  expectStatus(await pair.primary.api("DELETE", `/v1/pools/${goneId}`, { key: tenant.key }), 202);
  await waitFor(
    "the deleted pool gone from DR's standby list",
    async () => !(await standbyInDr()).includes(goneId),
    deadlineMs,
    250,
  );
  expect(await standbyInDr()).toContain(keptId);

  const drill = await pair.dr.api("POST", "/v1/dr/drills", { key: tenant.key, body: { pools: [goneId] } });
  expect(drill.status).toBeGreaterThanOrEqual(400);
  expect(drill.status).toBeLessThan(500);
  expect(drill.body.type).toMatch(/\/pool-deleted$/);
  expect(drill.body.detail).toContain(goneId);
});

it("configuration delivered again, late and out of order, does not bring the deleted pool back", async () => {
  // Every document the primary shipped: the ones from before the deletion hold the pool.
  const keys = await configKeys();
  expect(keys.length).toBeGreaterThan(1);
  await redeliver(keys);
  expect(await standbyInDr()).not.toContain(goneId);
  expect(await standbyInDr()).toContain(keptId);
});

it("a deletion that reaches DR before the pool's creation keeps the pool out", async () => {
  const before = await configKeys();
  pair.proxy.cut();
  let neverSeen: unknown;
  try {
    neverSeenId = await newPool("never-seen", 1);
    neverSeen = await pair.primary.region.app.ports.pools.get(tenant.tenantId, neverSeenId);
    expectStatus(await pair.primary.api("DELETE", `/v1/pools/${neverSeenId}`, { key: tenant.key }), 202);
  } finally {
    pair.proxy.restore();
  }
  // The primary ships what it has now (no such pool) once DR is reachable again.
  await waitFor(
    "a new configuration document in DR",
    async () => (await configKeys()).length > before.length,
    deadlineMs,
    250,
  );
  await waitForDrained(pair.primary, pair.primary.region.dr.replication.url);
  await waitForDrained(pair.dr, drQueue());
  // Then the creation arrives, late: a document that still holds the pool.
  const latest = await pair.dr.region.app.ports.inbox.getJson<{ pools: unknown[] }>(
    (await configKeys()).at(-1) as string,
  );
  const staleKey = `config/${tenant.tenantId}/0000-stale-create.json`;
  await s3.send(
    new PutObjectCommand({
      Bucket: drBucket(),
      Key: staleKey,
      Body: JSON.stringify({ ...latest, pools: [...latest.pools, neverSeen] }),
      ContentType: "application/json",
    }),
  );
  await redeliver([staleKey]);
  expect(await standbyInDr()).not.toContain(neverSeenId);
  const drill = await pair.dr.api("POST", "/v1/dr/drills", {
    key: tenant.key,
    body: { pools: [neverSeenId] },
  });
  expect(drill.status).toBeGreaterThanOrEqual(400);
  expect(drill.status).toBeLessThan(500);
});

it("an image version deleted in the primary is gone in DR: record, image file, replicas and bucket object", async () => {
  const ref = { tenantId: tenant.tenantId, imageId, version: deletedVersion };
  const file = pair.dr.region.app.ports.region.imagePath(ref);
  const object = replicationKeys.image(tenant.tenantId, imageId, deletedVersion);
  await access(file);
  expect(await inDrBucket(object)).toBe(true);

  // Deletable in the primary once the deleted pool's desktops are gone.
  await waitFor(
    "the version deleted in the primary",
    async () => {
      const res = await pair.primary.api("DELETE", `/v1/images/${imageId}/versions/${deletedVersion}`, {
        key: tenant.key,
      });
      if (res.status !== 204 && res.status !== 409) throw new Error(`DELETE answered ${res.status}`);
      return res.status === 204;
    },
    deadlineMs,
    250,
  );
  await waitFor(
    "the deleted version gone in DR",
    async () => {
      const image = expectStatus(await pair.dr.api("GET", `/v1/images/${imageId}`, { key: tenant.key }), 200);
      return !image.versions.some((v: any) => v.version === deletedVersion);
    },
    deadlineMs,
    250,
  );
  await expect(access(file)).rejects.toThrow();
  expect(await inDrBucket(object)).toBe(false);
  expect((await drReplicasOfDeletedVersion()).records).toEqual([]);
  expect(replicaFiles.length).toBeGreaterThan(0);
  for (const f of replicaFiles) await expect(access(f)).rejects.toThrow();

  // Late and repeated configuration (the earlier documents list the version) installs nothing again.
  await redeliver(await configKeys());
  const image = expectStatus(await pair.dr.api("GET", `/v1/images/${imageId}`, { key: tenant.key }), 200);
  expect(image.versions.map((v: any) => v.version)).toEqual([1]);
  await expect(access(file)).rejects.toThrow();
});

it("configuration documents applied at the same time lose no standby pool", async () => {
  const dr = pair.dr.region.app.ports;
  const [latest] = (await configKeys()).slice(-1);
  const doc = await dr.inbox.getJson<Record<string, any>>(latest as string);
  const kept = doc.pools.find((p: any) => p.poolId === keptId);
  const put = async (name: string, body: unknown) => {
    const key = `config/${tenant.tenantId}/${name}.json`;
    await s3.send(new PutObjectCommand({ Bucket: drBucket(), Key: key, Body: JSON.stringify(body) }));
    return { kind: "apply-config" as const, tenantId: tenant.tenantId, key, sourceRegion: "primary" };
  };
  const raced: string[] = [];
  for (let round = 0; round < 3; round++) {
    // Two documents, each naming a pool the other does not, applied at once.
    const ids = [`pool-race${round}a`, `pool-race${round}b`];
    const applies = await Promise.all(
      ids.map((poolId) => put(`race-${poolId}`, { ...doc, pools: [{ ...kept, poolId }] })),
    );
    await Promise.all(applies.map((m) => applyConfig(dr, m)));
    expect(await standbyInDr()).toEqual(expect.arrayContaining([...raced, ...ids, keptId]));
    raced.push(...ids);
  }
  // Gone again (tombstones), so the failover below brings up the primary's live pools only.
  await applyConfig(dr, await put("race-cleanup", { ...doc, deletedPools: [...doc.deletedPools, ...raced] }));
  expect(await standbyInDr()).not.toEqual(expect.arrayContaining([raced[0]]));
});

it("image versions shipped by configuration ships at the same time are all recorded, each once", async () => {
  const dr = pair.primary.region.app.ports.dr;
  const tenantId = `ten-shipped-${Date.now()}`;
  await Promise.all(
    ["img-a@1", "img-b@1", "img-a@1", "img-c@2"].map((id) => dr.addShippedImage(tenantId, id)),
  );
  expect((await dr.getState(tenantId))?.shippedImages?.sort()).toEqual(["img-a@1", "img-b@1", "img-c@2"]);
});

it("failover brings up the live pools only", async () => {
  expectStatus(await pair.dr.api("POST", "/v1/dr/failover", { key: tenant.key }), 202);
  const pools = expectStatus(await pair.dr.api("GET", "/v1/pools", { key: tenant.key }), 200).items;
  const ids = pools.map((p: any) => p.poolId);
  expect(ids).toContain(keptId);
  expect(ids).not.toContain(goneId);
  expect(ids).not.toContain(neverSeenId);
});
