import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { setCheckpointHook } from "../../shared/faults.ts";
import {
  diskFilesOf,
  diskPathOf,
  expectStatus,
  importPath,
  readyImage,
  readyPool,
  readyVersion,
  recordingApp,
  run,
  useTenantRegion,
  waitFor,
  waitForCounts,
} from "./harness.ts";

const fx = useTenantRegion();

const api = (method: string, path: string, body?: unknown) =>
  fx.r.api(method, path, { key: fx.tenant.key, ...(body !== undefined ? { body } : {}) });
const desktopsOf = async (poolId: string) =>
  expectStatus(await api("GET", `/v1/pools/${poolId}/desktops`), 200).items as any[];
const logon = async (poolId: string, userId: string) =>
  expectStatus(await api("POST", `/v1/pools/${poolId}/logons`, { userId }), 200);
const logoff = async (sessionId: string) =>
  expectStatus(await api("POST", `/v1/sessions/${sessionId}/logoff`, {}), 200);
const diskOf = (poolId: string, desktopId: string) => diskPathOf(fx.r, fx.tenant.tenantId, poolId, desktopId);
const writeInto = (path: string, what: string) => run("qemu-io", ["-f", "qcow2", "-c", what, path]);

async function waitForRecompose(poolId: string, toVersion: number, done: number, pending: number) {
  await waitFor(
    `recompose to v${toVersion}: ${done} done, ${pending} pending`,
    async () => {
      const rc = expectStatus(await api("GET", `/v1/pools/${poolId}`), 200).recompose;
      return rc?.toVersion === toVersion && rc.done === done && rc.pending === pending && rc.failed === 0;
    },
    60_000,
  );
}

afterEach(() => setCheckpointHook(undefined));

describe("recompose", () => {
  it("a desktop being refreshed on the old version when the recompose starts follows the pool afterwards", async () => {
    const { imageId } = await readyImage(fx.r, fx.tenant.key, { blankSizeMiB: 32 });
    const v2 = await readyVersion(fx.r, fx.tenant.key, imageId, { blankSizeMiB: 32 });
    const poolId = await readyPool(fx.r, fx.tenant.key, imageId, 2, { imageVersion: 1 });
    const session = await logon(poolId, "late");
    // Its refresh decides on version 1, builds the disk, and is held before the desktop is freed.
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let reached!: () => void;
    const arrived = new Promise<void>((r) => {
      reached = r;
    });
    setCheckpointHook(async (name, ids) => {
      if (name !== "refresh:before-available" || ids.desktopId !== session.desktopId) return;
      reached();
      await held;
    });
    await logoff(session.sessionId);
    await arrived;
    // The recompose lists the pool while that desktop is REFRESHING: it cannot move it now.
    expectStatus(await api("POST", `/v1/pools/${poolId}/recompose`, { imageVersion: v2 }), 202);
    release();
    await waitForRecompose(poolId, v2, 2, 0);
    for (const d of await desktopsOf(poolId)) {
      expect(d.imageVersion).toBe(v2);
      expect(d.state).toBe("AVAILABLE");
    }
  });

  it("a desktop whose recompose fails goes to ERROR and the rest of the pool moves on", async () => {
    const { imageId } = await readyImage(fx.r, fx.tenant.key, { blankSizeMiB: 32 });
    const v2 = await readyVersion(fx.r, fx.tenant.key, imageId, { blankSizeMiB: 32 });
    const poolId = await readyPool(fx.r, fx.tenant.key, imageId, 3, { imageVersion: 1 });
    const [broken] = await desktopsOf(poolId);
    // The place of its next disk (the recompose's generation) is taken by a non-empty folder.
    const next = fx.r.paths.desktop({ ...broken, generation: (broken.generation ?? 0) + 1 });
    await mkdir(join(next, "in-the-way"), { recursive: true });

    expectStatus(await api("POST", `/v1/pools/${poolId}/recompose`, { imageVersion: v2 }), 202);
    await waitFor("recompose settled with one failure", async () => {
      const rc = expectStatus(await api("GET", `/v1/pools/${poolId}`), 200).recompose;
      return rc?.done === 2 && rc.failed === 1 && rc.pending === 0;
    });
    const desktops = await desktopsOf(poolId);
    const failed = desktops.find((d) => d.desktopId === broken.desktopId);
    expect(failed.state).toBe("ERROR");
    expect(failed.error).toBeTruthy();
    for (const d of desktops.filter((x) => x.desktopId !== broken.desktopId)) {
      expect(d).toMatchObject({ state: "AVAILABLE", imageVersion: v2 });
    }
  });

  it("10 desktops, 4 busy: free ones move at once, busy ones at logoff, sessions untouched; then rollback", async () => {
    const { imageId } = await readyImage(fx.r, fx.tenant.key, { blankSizeMiB: 32 });
    const v2 = await readyVersion(fx.r, fx.tenant.key, imageId, { blankSizeMiB: 32 });
    const poolId = await readyPool(fx.r, fx.tenant.key, imageId, 10, { imageVersion: 1 });
    const sessions = await Promise.all([0, 1, 2, 3].map((i) => logon(poolId, `busy-${i}`)));

    const started = expectStatus(
      await api("POST", `/v1/pools/${poolId}/recompose`, { imageVersion: v2 }),
      202,
    );
    expect(started.imageVersion).toBe(v2);
    expect(started.recompose).toMatchObject({ fromVersion: 1, toVersion: v2 });
    await waitForRecompose(poolId, v2, 6, 4);
    // The busy users kept their sessions and their desktops, still on v1.
    for (const s of sessions) {
      const got = expectStatus(await api("GET", `/v1/sessions/${s.sessionId}`), 200);
      expect(got).toMatchObject({ state: "ACTIVE", desktopId: s.desktopId });
    }
    const busy = (await desktopsOf(poolId)).filter((d) => d.state === "ASSIGNED");
    expect(busy.map((d) => d.imageVersion)).toEqual([1, 1, 1, 1]);
    // A user logging on again meanwhile is reconnected, not moved.
    expect((await logon(poolId, "busy-0")).sessionId).toBe(sessions[0]?.sessionId);

    for (const s of sessions) await logoff(s.sessionId);
    await waitForRecompose(poolId, v2, 10, 0);
    const after = await desktopsOf(poolId);
    expect(after.every((d) => d.imageVersion === v2 && d.state === "AVAILABLE")).toBe(true);
    for (const d of after) {
      const info = JSON.parse(
        (await run("qemu-img", ["info", "--output=json", "-U", await diskOf(poolId, d.desktopId)])).stdout,
      );
      expect(info["backing-filename"]).toMatch(new RegExp(`${imageId}-v${v2}\\.qcow2$`));
    }

    // Rollback, forced: a user on the pool is logged off and rebuilt on v1 too.
    const late = await logon(poolId, "late");
    const back = expectStatus(
      await api("POST", `/v1/pools/${poolId}/recompose/rollback`, { force: true }),
      202,
    );
    expect(back.recompose).toMatchObject({ fromVersion: v2, toVersion: 1 });
    await waitForRecompose(poolId, 1, 10, 0);
    expect(expectStatus(await api("GET", `/v1/sessions/${late.sessionId}`), 200)).toMatchObject({
      state: "ENDED",
      endedBy: "recompose",
    });
    expect((await desktopsOf(poolId)).every((d) => d.imageVersion === 1)).toBe(true);
  });

  it("a retired or unknown target version is refused, changing nothing", async () => {
    const { imageId } = await readyImage(fx.r, fx.tenant.key, { blankSizeMiB: 16 });
    const poolId = await readyPool(fx.r, fx.tenant.key, imageId, 1);
    const unknown = await api("POST", `/v1/pools/${poolId}/recompose`, { imageVersion: 9 });
    expect(unknown.status).toBe(404);
    const bad = await api("POST", `/v1/pools/${poolId}/recompose`, { imageVersion: "two" });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe("body.imageVersion");
    expect(expectStatus(await api("GET", `/v1/pools/${poolId}`), 200).recompose).toBeUndefined();
  });

  it("at most N disk jobs hold a scope's slots at once (leases in the table)", async () => {
    const ds = fx.r.region.app.ports.datastores;
    const held = new Map<string, number | undefined>();
    for (const holder of ["a", "b", "c", "d"])
      held.set(holder, await ds.acquireSlot("slots", holder, 4, 60_000));
    expect(new Set(held.values())).toEqual(new Set([0, 1, 2, 3]));
    expect(await ds.acquireSlot("slots", "e", 4, 60_000)).toBeUndefined();
    // Only its holder frees a slot.
    await ds.releaseSlot("slots", held.get("c") as number, "b");
    expect(await ds.acquireSlot("slots", "e", 4, 60_000)).toBeUndefined();
    await ds.releaseSlot("slots", held.get("c") as number, "c");
    expect(await ds.acquireSlot("slots", "e", 4, 60_000)).toBe(held.get("c"));
    // A holder that died: its lease runs out and the slot is taken over.
    expect(await ds.acquireSlot("gone", "dead", 1, -1)).toBe(0);
    expect(await ds.acquireSlot("gone", "alive", 1, 60_000)).toBe(0);
  });

  it("a job at a reached cap learns it in two calls, and finds the one free slot in three", async () => {
    const { app, calls, close } = recordingApp(fx.r.region.app.config);
    try {
      const ds = app.ports.datastores;
      const slots: number[] = [];
      for (let i = 0; i < 12; i++)
        slots.push((await ds.acquireSlot("twelve", `h${i}`, 12, 60_000)) as number);
      expect(new Set(slots).size).toBe(12);
      calls.length = 0;
      expect(await ds.acquireSlot("twelve", "late", 12, 60_000)).toBeUndefined();
      expect(calls.map((c) => c.command)).toEqual(["PutItemCommand", "QueryCommand"]);
      // One slot freed: whichever slot the first try picks, the read leads to the free one.
      const freed = slots[5] as number;
      await ds.releaseSlot("twelve", freed, "h5");
      calls.length = 0;
      expect(await ds.acquireSlot("twelve", "late", 12, 60_000)).toBe(freed);
      expect(calls.length).toBeLessThanOrEqual(3);
    } finally {
      await close();
    }
  });
});

describe("dedicated desktops and refresh policies", () => {
  it("a dedicated user gets the same desktop back, with their changes", async () => {
    const { imageId } = await readyImage(fx.r, fx.tenant.key, { blankSizeMiB: 16 });
    const poolId = await readyPool(fx.r, fx.tenant.key, imageId, 3, { assignment: "dedicated" });
    const pool = expectStatus(await api("GET", `/v1/pools/${poolId}`), 200);
    expect(pool).toMatchObject({ assignment: "dedicated", refreshPolicy: "none" });
    const first = await logon(poolId, "alice");
    const other = await logon(poolId, "bob");
    expect(other.desktopId).not.toBe(first.desktopId);
    await writeInto(await diskOf(poolId, first.desktopId), "write -P 0x33 0 1M");
    await logoff(first.sessionId);
    await waitForCounts(fx.r, fx.tenant.key, poolId, { AVAILABLE: 2, ASSIGNED: 1 });
    // Carol, new, gets the one unowned desktop, never alice's free one.
    const carol = await logon(poolId, "carol");
    expect([first.desktopId, other.desktopId]).not.toContain(carol.desktopId);
    expect((await api("POST", `/v1/pools/${poolId}/logons`, { userId: "dave" })).status).toBe(503);
    const again = await logon(poolId, "alice");
    expect(again.desktopId).toBe(first.desktopId);
    expect(again.sessionId).not.toBe(first.sessionId);
    const read = await writeInto(await diskOf(poolId, first.desktopId), "read -P 0x33 0 1M");
    expect(read.stdout).not.toMatch(/Pattern verification failed/);
    const d = (await desktopsOf(poolId)).find((x) => x.desktopId === first.desktopId);
    expect(d.assignedUserId).toBe("alice");
  });

  it("refreshWhenDeltaExceedsPercent refreshes a desktop whose delta has grown, and keeps one that has not", async () => {
    const source = await importPath(fx.r, fx.tenant.tenantId, "four-mib.qcow2");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", source, "64M"]);
    await writeInto(source, "write -P 0x5a 0 4M");
    const { imageId } = await readyImage(fx.r, fx.tenant.key, { path: source });
    // Only a dedicated pool may keep deltas across sessions (refreshPolicy none).
    const poolId = await readyPool(fx.r, fx.tenant.key, imageId, 2, {
      assignment: "dedicated",
      refreshPolicy: "none",
      refreshWhenDeltaExceedsPercent: 50,
    });
    const big = await logon(poolId, "writer");
    const small = await logon(poolId, "reader");
    await writeInto(await diskOf(poolId, big.desktopId), "write -P 0x11 8M 4M"); // ~100% of the replica
    await writeInto(await diskOf(poolId, small.desktopId), "write -P 0x22 8M 64k"); // ~2%
    const before = Object.fromEntries((await desktopsOf(poolId)).map((d) => [d.desktopId, d]));
    await logoff(big.sessionId);
    await logoff(small.sessionId);
    await waitForCounts(fx.r, fx.tenant.key, poolId, { AVAILABLE: 2 });
    const after = Object.fromEntries((await desktopsOf(poolId)).map((d) => [d.desktopId, d]));
    expect(after[big.desktopId].deltaBytes).toBeLessThan(1024 * 1024);
    expect(after[big.desktopId].pristineAt).not.toBe(before[big.desktopId].pristineAt);
    expect(after[small.desktopId].deltaBytes).toBeGreaterThanOrEqual(64 * 1024);
    expect(after[small.desktopId].pristineAt).toBe(before[small.desktopId].pristineAt);
  });

  it("refreshPolicy delete destroys the desktop at logoff and provisions a new one", async () => {
    const { imageId } = await readyImage(fx.r, fx.tenant.key, { blankSizeMiB: 16 });
    const poolId = await readyPool(fx.r, fx.tenant.key, imageId, 1, { refreshPolicy: "delete" });
    const s = await logon(poolId, "u");
    await logoff(s.sessionId);
    await waitFor("a new desktop", async () => {
      const ds = await desktopsOf(poolId);
      return ds.length === 1 && ds[0].state === "AVAILABLE" && ds[0].desktopId !== s.desktopId;
    });
    expect(await diskFilesOf(fx.r, fx.tenant.tenantId, poolId, s.desktopId)).toEqual([]);
  });

  it("GET /v1/storage: used, provisioned and the savings against full clones", async () => {
    const source = await importPath(fx.r, fx.tenant.tenantId, "eight-mib.qcow2");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", source, "64M"]);
    await writeInto(source, "write -P 0x5a 0 8M");
    const { imageId } = await readyImage(fx.r, fx.tenant.key, { path: source });
    const linked = await readyPool(fx.r, fx.tenant.key, imageId, 4);
    const full = await readyPool(fx.r, fx.tenant.key, imageId, 2, { cloneType: "full" });
    const report = expectStatus(await api("GET", "/v1/storage"), 200);
    const byPool = (id: string) => report.pools.find((p: any) => p.poolId === id);
    const l = byPool(linked);
    const f = byPool(full);
    expect(l).toMatchObject({ cloneType: "linked", desktops: 4, provisionedBytes: 4 * 64 * 1024 * 1024 });
    expect(l.replicaBytes).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    expect(l.deltaBytes).toBeLessThan(4 * 1024 * 1024);
    expect(l.savedBytes).toBeGreaterThan(2 * 8 * 1024 * 1024);
    expect(f).toMatchObject({ cloneType: "full", desktops: 2, replicaBytes: 0 });
    expect(f.deltaBytes).toBeGreaterThanOrEqual(2 * 8 * 1024 * 1024);
    const ds = report.datastores.find((d: any) => d.datastoreId === "ds-default");
    expect(ds.usedBytes).toBe(ds.replicaBytes + ds.deltaBytes);
    expect(ds.savedBytes).toBe(ds.fullCloneBytes - ds.usedBytes);
  });
});
