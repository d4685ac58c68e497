/**
 * Failover without forks lost: the DR region fences the primary as its failover returns; a change
 * the primary never shipped, and a session still open there, are kept whole as named forks (the
 * DR region's later-epoch history is the users'); failback completes; the tenant resolves each
 * fork through the API. Two local regions on the real emulators, real qcow2 disks.
 */
import { describe, expect, it } from "vitest";
import { contentSha256 } from "../../shared/adapters/storage/content-checksum.ts";
import { userDataPaths } from "../../shared/adapters/storage/user-data-store.ts";
import {
  changeUserData,
  holdsPattern,
  replicatedFrom,
  useRegionPairWithPool,
  userDataDisk,
} from "./dr-harness.ts";
import { expectStatus, run, type TestRegion, waitFor } from "./harness.ts";

const fx = useRegionPairWithPool(4);
const ref = (userId: string) => ({ tenantId: fx.tenant.tenantId, userId });
const record = (r: TestRegion, userId: string) => r.region.app.ports.userData.get(ref(userId));
const write = (r: TestRegion, userId: string, pattern: number, offset: string) =>
  changeUserData(r, fx.tenant, fx.poolId, userId, { pattern, offset });

const committed = (r: TestRegion, userId: string, version: number) =>
  waitFor(
    `${userId} at v${version} in ${r.region.name}`,
    async () => (await record(r, userId))?.version === version,
  );

async function logon(r: TestRegion, userId: string) {
  return r.api("POST", `/v1/pools/${fx.poolId}/logons`, { key: fx.tenant.key, body: { userId } });
}

/** Logs on and waits for the user's data to be attached; answers the session id. */
async function attached(r: TestRegion, userId: string): Promise<string> {
  const session = expectStatus(await logon(r, userId), 200);
  await waitFor(`${userId}'s data attached in ${r.region.name}`, async () => {
    const s = await r.api("GET", `/v1/sessions/${session.sessionId}`, { key: fx.tenant.key });
    return s.body.userData?.state === "ATTACHED";
  });
  return session.sessionId;
}

const overlayOf = (r: TestRegion, userId: string, sessionId: string) =>
  r.region.app.ports.userDataStore.overlayPath(ref(userId), sessionId);

async function qemuWrite(path: string, pattern: number, offset: string) {
  await run("qemu-io", ["-f", "qcow2", "-c", `write -P ${pattern} ${offset} 1M`, path]);
}

async function replicationOf(r: TestRegion) {
  return expectStatus(await r.api("GET", "/v1/dr/replication", { key: fx.tenant.key }), 200);
}

async function forksOf(r: TestRegion) {
  return (await replicationOf(r)).forks as any[];
}

describe("failover without lost forks", () => {
  let bobPrimarySession: string;

  it("fences the primary as the failover returns, with a change unshipped and a session open there", async () => {
    // alice v1 reaches DR; then DR is cut off and alice's v2 stays in the primary only.
    await write(fx.pair.primary, "alice", 0x11, "0");
    await write(fx.pair.primary, "carol", 0x11, "0");
    await replicatedFrom(fx.pair.primary, fx.tenant.key, "alice", 1);
    await replicatedFrom(fx.pair.primary, fx.tenant.key, "carol", 1);
    fx.pair.proxy.cut();
    await write(fx.pair.primary, "alice", 0x22, "1M");
    await write(fx.pair.primary, "carol", 0x22, "1M");
    // The commit is a job after the logoff: wait for it.
    await committed(fx.pair.primary, "alice", 2);
    await committed(fx.pair.primary, "carol", 2);
    expect((await record(fx.pair.primary, "alice"))?.replicatedVersion).toBe(1);
    // bob is logged on in the primary and has written, not logged off.
    bobPrimarySession = await attached(fx.pair.primary, "bob");
    await qemuWrite(overlayOf(fx.pair.primary, "bob", bobPrimarySession), 0x44, "0");
    // The principal is cached now (a minute by default): the refusal below cannot come from it.
    expectStatus(await fx.pair.primary.api("GET", `/v1/pools/${fx.poolId}`, { key: fx.tenant.key }), 200);

    const failover = expectStatus(
      await fx.pair.dr.api("POST", "/v1/dr/failover", { key: fx.tenant.key }),
      202,
    );
    expect(failover).toMatchObject({ failedOver: true, epoch: 1, primaryFenced: true });
    const refused = await logon(fx.pair.primary, "dave");
    expect(refused.status).toBe(409);
    expect(refused.body.type).toMatch(/tenant-failed-over$/);

    // The fence ends the primary's sessions; bob's change is kept as a fork, not as a version.
    await waitFor("bob's primary session ended by the failover", async () => {
      const s = await fx.pair.primary.api("GET", `/v1/sessions/${bobPrimarySession}`, { key: fx.tenant.key });
      return s.body.state === "ENDED" && s.body.endedBy === "failover";
    });
    await waitFor("bob's change kept as a fork in the primary", async () =>
      (await forksOf(fx.pair.primary)).some((f) => f.userId === "bob"),
    );
    const bobFork = (await forksOf(fx.pair.primary)).find((f) => f.userId === "bob");
    expect(bobFork).toMatchObject({
      cause: "committed-while-fenced",
      state: "OPEN",
      region: "primary",
      baseVersion: 0,
      sessionId: bobPrimarySession,
    });
    expect((await record(fx.pair.primary, "bob"))?.version ?? 0).toBe(0);
  });

  it("the users work in DR; the primary's own versions give way and are kept as forks", async () => {
    await waitFor("DR pool ready", async () => {
      const res = await fx.pair.dr.api("GET", `/v1/pools/${fx.poolId}`, { key: fx.tenant.key });
      return res.body.desktopCounts?.AVAILABLE === 4;
    });
    // alice works in DR on v1 (what DR has) while the primary's v2 is still cut off.
    await write(fx.pair.dr, "alice", 0x33, "2M");
    await write(fx.pair.dr, "bob", 0x55, "4M");
    await committed(fx.pair.dr, "alice", 2);
    // carol is logged on in DR when the primary's late v2 arrives: her session's change wins.
    const carolDrSession = await attached(fx.pair.dr, "carol");
    fx.pair.proxy.restore();
    await waitFor(
      "the primary's late v2 of carol answered as superseded",
      async () =>
        (await fx.pair.primary.region.app.ports.userData.getChange(ref("carol"), 2))?.supersededAt !==
        undefined,
      90_000,
    );
    await qemuWrite(overlayOf(fx.pair.dr, "carol", carolDrSession), 0x66, "3M");
    expectStatus(
      await fx.pair.dr.api("POST", `/v1/sessions/${carolDrSession}/logoff`, { key: fx.tenant.key }),
      200,
    );
    for (const [user, version] of [
      ["alice", 2],
      ["bob", 1],
      ["carol", 2],
    ] as const)
      await replicatedFrom(fx.pair.dr, fx.tenant.key, user, version);

    // The primary holds DR's history now, and its own v2s as forks.
    for (const user of ["alice", "carol"]) {
      const [p, d] = await Promise.all([record(fx.pair.primary, user), record(fx.pair.dr, user)]);
      expect(p).toMatchObject({ version: 2, sha256: d?.sha256, epoch: 1 });
    }
    const forks = await forksOf(fx.pair.primary);
    for (const user of ["alice", "carol"])
      expect(forks.find((f) => f.userId === user)).toMatchObject({
        cause: "superseded-by-failover",
        state: "OPEN",
        epoch: 0,
        baseVersion: 1,
        versions: [2],
      });
    // Nothing waits for ever: no backlog on either side (the superseded change is not pending).
    expect((await replicationOf(fx.pair.primary)).pendingChanges).toBe(0);
    expect((await replicationOf(fx.pair.dr)).pendingChanges).toBe(0);
  });

  it("failback completes and the primary serves again; every fork is visible there", async () => {
    expectStatus(await fx.pair.dr.api("POST", "/v1/dr/failback", { key: fx.tenant.key }), 202);
    await waitFor(
      "primary serves again",
      async () => {
        const s = await fx.pair.primary.api("GET", "/v1/dr/replication", { key: fx.tenant.key });
        return s.body.dr.fenced === false && s.body.dr.epoch === 2;
      },
      90_000,
    );
    const session = expectStatus(await logon(fx.pair.primary, "erin"), 200);
    expectStatus(
      await fx.pair.primary.api("POST", `/v1/sessions/${session.sessionId}/logoff`, { key: fx.tenant.key }),
      200,
    );
    const forks = await forksOf(fx.pair.primary);
    expect(forks.map((f) => f.userId).sort()).toEqual(["alice", "bob", "carol"]);
  });

  it("the fx.tenant resolves the forks: keep the fork (its content becomes the next version, replicated) or the current history", async () => {
    const forks = await forksOf(fx.pair.primary);
    const alice = forks.find((f) => f.userId === "alice");
    const bob = forks.find((f) => f.userId === "bob");
    // The fork holds exactly the primary's unshipped v2: v1 with 0x22 at 1M, and not DR's 0x33.
    const forkDisk = userDataPaths(fx.pair.primary.region.app.config.dr?.userDataPath ?? "").fork(
      ref("alice"),
      alice.forkId,
    );
    expect(await contentSha256(forkDisk)).toBe(alice.sha256);

    const started = await fx.pair.primary.api("POST", `/v1/dr/forks/${alice.forkId}/resolve`, {
      key: fx.tenant.key,
      body: { keep: "fork" },
    });
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ state: "RESOLVING", keep: "fork" });
    await waitFor("alice's fork resolved", async () => {
      const f = (await forksOf(fx.pair.primary)).find((x) => x.forkId === alice.forkId);
      return f.state === "RESOLVED";
    });
    const resolved = (await forksOf(fx.pair.primary)).find((x) => x.forkId === alice.forkId);
    expect(resolved).toMatchObject({ keep: "fork", resolvedVersion: 3 });
    const v3 = await record(fx.pair.primary, "alice");
    expect(v3).toMatchObject({ version: 3, sha256: alice.sha256, epoch: 2 });
    const disk = userDataDisk(fx.pair.primary, fx.tenant.tenantId, "alice", 3);
    expect(await holdsPattern(disk, 0x11, "0")).toBe(true);
    expect(await holdsPattern(disk, 0x22, "1M")).toBe(true);
    // The resolution is a version like any other: shipped to DR and verified there.
    await replicatedFrom(fx.pair.primary, fx.tenant.key, "alice", 3);
    expect((await record(fx.pair.dr, "alice"))?.sha256).toBe(alice.sha256);

    const dropped = await fx.pair.primary.api("POST", `/v1/dr/forks/${bob.forkId}/resolve`, {
      key: fx.tenant.key,
      body: { keep: "current" },
    });
    expect(dropped.status).toBe(202);
    await waitFor("bob's fork dropped", async () => {
      const f = (await forksOf(fx.pair.primary)).find((x) => x.forkId === bob.forkId);
      return f.state === "RESOLVED";
    });
    expect((await record(fx.pair.primary, "bob"))?.version).toBe(1);
  });

  it("a resolution the other way, an unknown fork or bad input is refused and changes nothing", async () => {
    const alice = (await forksOf(fx.pair.primary)).find((f) => f.userId === "alice");
    const again = await fx.pair.primary.api("POST", `/v1/dr/forks/${alice.forkId}/resolve`, {
      key: fx.tenant.key,
      body: { keep: "fork" },
    });
    expect(again.status).toBe(200);
    const other = await fx.pair.primary.api("POST", `/v1/dr/forks/${alice.forkId}/resolve`, {
      key: fx.tenant.key,
      body: { keep: "current" },
    });
    expect(other.status).toBe(409);
    expect(other.body.type).toMatch(/fork-resolved$/);
    const unknown = await fx.pair.primary.api("POST", "/v1/dr/forks/fork-0000000000000000/resolve", {
      key: fx.tenant.key,
      body: { keep: "current" },
    });
    expect(unknown.status).toBe(404);
    const bad = await fx.pair.primary.api("POST", `/v1/dr/forks/${alice.forkId}/resolve`, {
      key: fx.tenant.key,
      body: { keep: "both" },
    });
    expect(bad.status).toBe(400);
    expect((await record(fx.pair.primary, "alice"))?.version).toBe(3);
  });
});
