/**
 * Invariant 2 under duplicate and late disk jobs: SQS delivers a refresh job more than once (an
 * API logoff plus the agent's event, the reconciler's re-send, redelivery), and one delivery may
 * stall across a later user's whole session. The clone worker runs here only through the test's
 * hands, so it decides which delivery runs when.
 */
import { afterEach, beforeAll, expect, it } from "vitest";
import { reconcile } from "../../shared/domain/reconcile.ts";
import { setCheckpointHook } from "../../shared/faults.ts";
import type { Job } from "../support/job-tap.ts";
import { expectStatus, run, tapCloneWorker, useTenantRegion, waitFor } from "./harness.ts";

const fx = useTenantRegion({
  region: { workers: ["logoff", "user-data", "replication"], reconcileEveryMs: 0 },
});
let tap: Awaited<ReturnType<typeof tapCloneWorker>>["tap"];
let imageId: string;

beforeAll(async () => {
  ({ tap, imageId } = await tapCloneWorker(fx));
});
afterEach(() => setCheckpointHook(undefined));

const api = (method: string, path: string, body?: unknown) =>
  fx.r.api(method, path, { key: fx.tenant.key, ...(body !== undefined ? { body } : {}) });

async function desktopOf(poolId: string) {
  const [d] = expectStatus(await api("GET", `/v1/pools/${poolId}/desktops`), 200).items;
  return d;
}
const diskOf = (d: any) => fx.r.paths.desktop(d);
const replicaOf = () =>
  fx.r.paths.replica({ tenantId: fx.tenant.tenantId, imageId, version: 1 }, "ds-default");

/** A pool of one desktop, provisioned by hand. */
async function onePool() {
  const pool = expectStatus(await api("POST", "/v1/pools", { name: "one", imageId, size: 1 }), 201);
  await tap.drain();
  expect((await desktopOf(pool.poolId)).state).toBe("AVAILABLE");
  return pool.poolId as string;
}

/** A user's whole session: logon, a write into the desktop's disk, logoff (its refresh job waits). */
async function session(poolId: string, userId: string, pattern: number) {
  const s = expectStatus(await api("POST", `/v1/pools/${poolId}/logons`, { userId }), 200);
  await run("qemu-io", ["-f", "qcow2", "-c", `write -P ${pattern} 0 1M`, diskOf(await desktopOf(poolId))]);
  expectStatus(await api("POST", `/v1/sessions/${s.sessionId}/logoff`), 200);
  return s.sessionId as string;
}

/** Holds every delivery that reaches `point` for this desktop until `release` is called. */
function stallAt(point: string, desktopId: string) {
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  let reached!: () => void;
  const arrived = new Promise<void>((r) => {
    reached = r;
  });
  let stalled = false;
  setCheckpointHook(async (name, ids) => {
    if (name !== point || ids.desktopId !== desktopId || stalled) return;
    stalled = true;
    reached();
    await released;
  });
  return { arrived, release };
}

const refreshJob = (poolId: string) => (body: any) =>
  body.kind === "refresh-desktop" && body.poolId === poolId;

it("a refresh job that stalls across the next user's session never hands that user's delta to a third", async () => {
  const poolId = await onePool();
  const { desktopId } = await desktopOf(poolId);
  await session(poolId, "u1", 0x11);
  const { job } = await tap.takeUntil(refreshJob(poolId));
  // Two deliveries of the same job: the first stalls after writing its disk, the second completes.
  const stall = stallAt("refresh:before-available", desktopId);
  const late = tap.run(job);
  await stall.arrived;
  expect(await tap.run(job)).toBe("done");
  expect((await desktopOf(poolId)).state).toBe("AVAILABLE");
  // A whole session of u2 while the first delivery is still stalled.
  await session(poolId, "u2", 0x22);
  stall.release();
  await late;
  await tap.ack(job);
  await tap.drain();
  await waitFor("desktop free again", async () => (await desktopOf(poolId)).state === "AVAILABLE");
  // u3 gets the desktop: pristine, nothing of u2's.
  expectStatus(await api("POST", `/v1/pools/${poolId}/logons`, { userId: "u3" }), 200);
  const { stdout } = await run("qemu-img", ["compare", "-U", diskOf(await desktopOf(poolId)), replicaOf()]);
  expect(stdout).toContain("Images are identical");
});

it("a stalled disk job writes only its own disk file, never the one a later session uses", async () => {
  const poolId = await onePool();
  const { desktopId } = await desktopOf(poolId);
  await session(poolId, "v1", 0x33);
  const { job } = await tap.takeUntil(refreshJob(poolId));
  const stall = stallAt("refresh:before-disk", desktopId);
  const late = tap.run(job);
  await stall.arrived;
  // Meanwhile the job runs again (a duplicate, or the reconciler's re-send) and the desktop is used.
  await tap.run(job);
  if ((await desktopOf(poolId)).state !== "AVAILABLE") {
    await reconcile(fx.r.region.app.ports, 0);
    await tap.drain();
  }
  expect((await desktopOf(poolId)).state).toBe("AVAILABLE");
  const s2 = expectStatus(await api("POST", `/v1/pools/${poolId}/logons`, { userId: "v2" }), 200);
  const live = diskOf(await desktopOf(poolId));
  await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x44 0 1M", live]);
  stall.release();
  await late;
  await tap.ack(job);
  // v2's session still has its data on its disk.
  const { stdout } = await run("qemu-io", ["-f", "qcow2", "-r", "-U", "-c", "read -P 0x44 0 1M", live]);
  expect(stdout).not.toContain("Pattern verification failed");
  expect((await desktopOf(poolId)).sessionId).toBe(s2.sessionId);
});

it("duplicate provision and recompose jobs build each disk once and leave no second writer", async () => {
  const pool = expectStatus(await api("POST", "/v1/pools", { name: "dup", imageId, size: 2 }), 201);
  const jobs: Job[] = [];
  // The pool's growth comes as provision-desktops jobs, a few desktops each.
  const provisioning = () =>
    jobs.flatMap((j) => (j.body.kind === "provision-desktops" ? j.body.desktopIds : []));
  for (let i = 0; i < 5 && provisioning().length < 2; i++) jobs.push(...(await tap.take()));
  expect(provisioning()).toHaveLength(2);
  // Every job delivered twice, concurrently.
  await Promise.all(jobs.flatMap((j) => [tap.run(j), tap.run(j)]));
  for (const j of jobs) await tap.ack(j);
  const desktops = expectStatus(await api("GET", `/v1/pools/${pool.poolId}/desktops`), 200).items;
  expect(desktops.map((d: any) => d.state)).toEqual(["AVAILABLE", "AVAILABLE"]);
  for (const d of desktops) {
    const { stdout } = await run("qemu-img", ["compare", "-U", diskOf(d), replicaOf()]);
    expect(stdout).toContain("Images are identical");
  }
});
