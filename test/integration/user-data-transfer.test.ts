/**
 * Issue 12, points 3 and 4: user-data deltas of any size travel between regions without being
 * staged in the function's temporary storage, and replicated history expires once it is superseded.
 */
import { mkdtemp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { DeleteCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { documentClient } from "../../shared/adapters/dynamodb/client.ts";
import { keys } from "../../shared/adapters/dynamodb/keys.ts";
import { s3Client } from "../../shared/adapters/s3/replication-bucket.ts";
import { contentSha256 } from "../../shared/adapters/storage/content-checksum.ts";
import { userDataPaths } from "../../shared/adapters/storage/user-data-store.ts";
import { userDataApplied } from "../../shared/domain/user-data-replication.ts";
import { replicationKeys } from "../../shared/messages/replication.ts";
import {
  changeUserData,
  holdsPattern,
  type RegionPair,
  replicatedFrom,
  startRegionPair,
  userDataDisk,
} from "./dr-harness.ts";
import { expectStatus, newTenant, readyImage, readyPool, type TestRegion, waitFor } from "./harness.ts";

const MiB = 1024 * 1024;
let pair: RegionPair;
let tenant: { tenantId: string; key: string };
let poolId: string;
let staging: { primary: string; dr: string };
let s3: ReturnType<typeof s3Client>;

beforeAll(async () => {
  staging = {
    primary: await mkdtemp(join(tmpdir(), "pristine-staging-")),
    dr: await mkdtemp(join(tmpdir(), "pristine-staging-")),
  };
  // A 1 MiB "temporary storage" and the smallest part size S3 allows: a few MiB delta must be
  // uploaded in parts and must not be staged in temporary storage on the way in.
  const transfer = (dir: string) => ({
    transfer: { stagingDir: dir, stagingLimitBytes: MiB, partSizeBytes: 5 * MiB },
  });
  pair = await startRegionPair(64 * MiB, transfer(staging.dr), transfer(staging.primary));
  tenant = await newTenant(pair.primary);
  const { imageId } = await readyImage(pair.primary, tenant.key);
  poolId = await readyPool(pair.primary, tenant.key, imageId, 2);
  s3 = s3Client(pair.primary.region.app.config.endpoints.sqs, "us-east-1");
});
afterAll(async () => {
  s3?.destroy();
  await pair?.stop();
});

const ref = (userId: string) => ({ tenantId: tenant.tenantId, userId });
const diskOf = (r: TestRegion, userId: string, version: number) =>
  userDataDisk(r, tenant.tenantId, userId, version);

/** Logs a user on, writes `size` of `pattern` at `offset` into their data disk, logs off. */
const session = (r: TestRegion, userId: string, pattern: number, offset: string, size: string) =>
  changeUserData(r, tenant, poolId, userId, { pattern, offset, size });

const replicated = (r: TestRegion, userId: string, version: number) =>
  replicatedFrom(r, tenant.key, userId, version);

/** The object's ETag in the region's replication bucket, or undefined when it is not there. */
async function etagOf(r: TestRegion, key: string): Promise<string | undefined> {
  try {
    return (await s3.send(new HeadObjectCommand({ Bucket: r.region.dr.bucket, Key: key }))).ETag;
  } catch (err) {
    if ((err as Error).name === "NotFound" || (err as Error).name === "NoSuchKey") return undefined;
    throw err;
  }
}

const expiresAtOf = async (r: TestRegion, userId: string, version: number) =>
  ((await r.region.app.ports.userData.getChange(ref(userId), version)) as { expiresAt?: number } | undefined)
    ?.expiresAt;

describe("user-data transfer and retention", () => {
  it("a delta larger than the temporary-storage limit is uploaded in parts and replicates", async () => {
    await session(pair.primary, "alice", 0x5a, "0", "8M");
    await replicated(pair.primary, "alice", 1);
    const change = await pair.primary.region.app.ports.userData.getChange(ref("alice"), 1);
    expect(change?.deltaBytes).toBeGreaterThan(8 * MiB);
    const [p, d] = await Promise.all([
      pair.primary.region.app.ports.userData.get(ref("alice")),
      pair.dr.region.app.ports.userData.get(ref("alice")),
    ]);
    expect(d?.version).toBe(1);
    expect(d?.sha256).toBe(p?.sha256);
    expect(await contentSha256(diskOf(pair.dr, "alice", 1))).toBe(p?.sha256);
    expect(await holdsPattern(diskOf(pair.dr, "alice", 1), 0x5a, "0", "8M")).toBe(true);

    // A multipart upload's ETag ends in -<parts>: 8 MiB in 5 MiB parts is 2.
    const key = replicationKeys.userDataDelta(tenant.tenantId, "alice", 1);
    expect(await etagOf(pair.dr, key)).toMatch(/-2"?$/);
    // The object is larger than the temporary-storage limit: the inbox refuses to stage it there ...
    await expect(pair.dr.region.app.ports.inbox.fetchFile(key)).rejects.toThrow(/temporary storage/);
    // ... so the apply streamed it into the user-data store, and left nothing behind anywhere.
    expect(await readdir(staging.dr)).toEqual([]);
    const userDir = userDataPaths(pair.dr.region.app.config.dr?.userDataPath ?? "").user(ref("alice"));
    expect(await readdir(join(userDir, "incoming"))).toEqual([]);
    expect((await readdir(userDir)).filter((f) => f.endsWith(".tmp") || f.endsWith(".part"))).toEqual([]);
  });

  it("an acknowledgement naming another checksum changes nothing; a repeated one is harmless", async () => {
    const { ports } = pair.primary.region.app;
    const before = await ports.userData.get(ref("alice"));
    const change = await ports.userData.getChange(ref("alice"), 1);
    const ack = {
      kind: "user-data-applied" as const,
      ...ref("alice"),
      version: 1,
      sha256: "0".repeat(64),
      appliedAt: new Date().toISOString(),
    };
    await expect(userDataApplied(ports, ack)).rejects.toThrow(/another checksum/);
    await expect(userDataApplied(ports, { ...ack, sha256: change?.sha256 ?? "" })).resolves.toBe(
      "v1 replicated",
    );
    expect(await ports.userData.get(ref("alice"))).toEqual(before);
    expect(await ports.userData.getChange(ref("alice"), 1)).toEqual(change);
  });

  it("replicated and superseded changes expire; unreplicated history is kept", async () => {
    const { primary, dr } = pair;
    await session(primary, "alice", 0x11, "8M", "1M");
    await replicated(primary, "alice", 2);
    const now = Date.now() / 1000;
    // v1: applied in both regions and superseded by v2, in both regions' tables.
    for (const r of [primary, dr]) {
      await waitFor(
        `v1's expiry in ${r.region.name}`,
        async () => (await expiresAtOf(r, "alice", 1)) !== undefined,
      );
      expect(await expiresAtOf(r, "alice", 1)).toBeGreaterThan(now);
      // v2 is the latest version: it stays.
      expect(await expiresAtOf(r, "alice", 2)).toBeUndefined();
    }
    // The bucket of the region that applied v2 no longer holds v1's delta (v2's stays for now).
    await waitFor(
      "v1's delta gone from DR's bucket",
      async () =>
        (await etagOf(dr, replicationKeys.userDataDelta(tenant.tenantId, "alice", 1))) === undefined,
    );
    expect(await etagOf(dr, replicationKeys.userDataDelta(tenant.tenantId, "alice", 2))).toBeDefined();

    // With DR away, v3 and v4 are committed: v2 (applied in DR) is superseded now and expires;
    // v3 is superseded but not applied in DR, so it must not expire.
    pair.proxy.cut();
    await session(primary, "alice", 0x22, "9M", "1M");
    await session(primary, "alice", 0x33, "10M", "1M");
    await waitFor(
      "alice v4 committed",
      async () => (await primary.region.app.ports.userData.get(ref("alice")))?.version === 4,
    );
    await waitFor(
      "v2's expiry in primary",
      async () => (await expiresAtOf(primary, "alice", 2)) !== undefined,
    );
    expect(await expiresAtOf(primary, "alice", 3)).toBeUndefined();
    expect(await expiresAtOf(primary, "alice", 4)).toBeUndefined();
    expect(await expiresAtOf(dr, "alice", 2)).toBeUndefined();

    // As DynamoDB's TTL would: the expired change records go. The status still reads right.
    const before = expectStatus(await primary.api("GET", "/v1/dr/replication", { key: tenant.key }), 200);
    expect(before.pendingChanges).toBe(2);
    const doc = documentClient(primary.region.app.config.endpoints.dynamodb, "us-east-1");
    const expired: [TestRegion, number][] = [
      [primary, 1],
      [primary, 2],
      [dr, 1],
    ];
    for (const [r, version] of expired)
      await doc.send(
        new DeleteCommand({
          TableName: r.region.app.config.tableName,
          Key: keys.userDataChange(tenant.tenantId, "alice", version),
        }),
      );
    doc.destroy();
    const after = expectStatus(await primary.api("GET", "/v1/dr/replication", { key: tenant.key }), 200);
    expect(after.pendingChanges).toBe(2);
    expect(after.pending.map((c: any) => c.version)).toEqual([3, 4]);
    expect(after.bytesShipped).toBe(before.bytesShipped);
    expect(after.bytesShipped).toBeGreaterThan(8 * MiB);
    expect(after.users).toEqual([
      expect.objectContaining({ userId: "alice", version: 4, replicatedVersion: 2 }),
    ]);

    // The link comes back: v3 and v4 are applied in DR; v2 and v3 expire there, v3 here.
    pair.proxy.restore();
    await replicated(primary, "alice", 4);
    for (const [r, version] of [
      [primary, 3],
      [dr, 2],
      [dr, 3],
    ] as const)
      await waitFor(
        `v${version}'s expiry in ${r.region.name}`,
        async () => (await expiresAtOf(r, "alice", version)) !== undefined,
      );
    for (const r of [primary, dr]) expect(await expiresAtOf(r, "alice", 4)).toBeUndefined();
    const deltaKey = (version: number) => replicationKeys.userDataDelta(tenant.tenantId, "alice", version);
    await waitFor("v2's and v3's deltas gone from DR's bucket", async () => {
      const [v2, v3] = await Promise.all([etagOf(dr, deltaKey(2)), etagOf(dr, deltaKey(3))]);
      return v2 === undefined && v3 === undefined;
    });
    expect(await etagOf(dr, deltaKey(4))).toBeDefined();
    expect(await holdsPattern(diskOf(dr, "alice", 4), 0x5a, "0", "8M")).toBe(true);
    expect(await holdsPattern(diskOf(dr, "alice", 4), 0x33, "10M", "1M")).toBe(true);
    const status = expectStatus(await primary.api("GET", "/v1/dr/replication", { key: tenant.key }), 200);
    expect(status.pendingChanges).toBe(0);
    expect(status.rpoP50Ms).toBeGreaterThanOrEqual(0);
  });
});
