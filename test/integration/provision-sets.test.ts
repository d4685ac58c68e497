/**
 * A pool's growth comes as sets of desktops, each set taken in one transaction and handed over in
 * one: under another job's take, a lost answer (the SDK retries a write that was applied) and a
 * desktop that moved on while its disk was built, every desktop is still built and handed over
 * once, fenced by its own generation, and one desktop never stops the others. The clone worker
 * runs here only through the test's hands.
 */
import { afterEach, beforeAll, expect, it } from "vitest";
import { setCheckpointHook } from "../../shared/faults.ts";
import type { Job } from "../support/job-tap.ts";
import { loseFirst, withoutIdempotencyTokens } from "../support/lost-responses.ts";
import { diskFilesOf, expectStatus, tapCloneWorker, useTenantRegion } from "./harness.ts";

const fx = useTenantRegion({
  region: { workers: ["logoff", "user-data", "replication"], reconcileEveryMs: 0 },
});
let tap: Awaited<ReturnType<typeof tapCloneWorker>>["tap"];
let imageId: string;

beforeAll(async () => {
  ({ tap, imageId } = await tapCloneWorker(fx));
});
afterEach(() => setCheckpointHook(undefined));

const ports = () => fx.r.region.app.ports;
const api = (method: string, path: string, body?: unknown) =>
  fx.r.api(method, path, { key: fx.tenant.key, ...(body !== undefined ? { body } : {}) });

/** A pool of five whose growth is one provision-desktops job, taken from the queue (not yet run). */
async function poolOfFive() {
  const pool = expectStatus(await api("POST", "/v1/pools", { name: "set", imageId, size: 5 }), 201);
  const { job, others } = await tap.takeUntil(
    (b) => b.kind === "provision-desktops" && b.poolId === pool.poolId,
  );
  // Others (the replica made ahead) run as the worker would.
  for (const other of others) {
    expect(other.body.kind).not.toMatch(/^provision/);
    await runOnce(other);
  }
  expect(job.body.desktopIds).toHaveLength(5);
  return { poolId: pool.poolId as string, job, ids: job.body.desktopIds as string[] };
}

const desktopsOf = async (poolId: string) =>
  (await ports().desktops.list(fx.tenant.tenantId, poolId)).sort((a, b) =>
    a.desktopId.localeCompare(b.desktopId),
  );
async function desktopOf(poolId: string, desktopId: string) {
  const d = await ports().desktops.get(fx.tenant.tenantId, poolId, desktopId);
  if (!d) throw new Error(`desktop ${desktopId} is gone`);
  return d;
}
const filesOf = (poolId: string, desktopId: string) =>
  diskFilesOf(fx.r, fx.tenant.tenantId, poolId, desktopId);

/** Runs one delivery of the job, and acknowledges it. */
async function runOnce(job: Job) {
  expect(await tap.run(job)).toBe("done");
  await tap.ack(job);
}

/** Each desktop's disk job is its own: within a set they follow one another, never overlap. */
function expectOwnIntervals(desktops: { diskJobStartedAt?: string; pristineAt?: string }[]) {
  const spans = desktops
    .map((d) => [Date.parse(d.diskJobStartedAt ?? ""), Date.parse(d.pristineAt ?? "")] as const)
    // By start, then end: a disk made within one millisecond starts and ends at the same time.
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (const [i, [start, end]] of spans.entries()) {
    expect(start).toBeLessThanOrEqual(end);
    if (i > 0) expect(start).toBeGreaterThanOrEqual(spans[i - 1]?.[1] ?? 0);
  }
}

const isSetTake = (command: string, input: Record<string, any>) =>
  command === "TransactWriteItemsCommand" &&
  String(input.TransactItems?.[0]?.Update?.UpdateExpression).includes("takenBy");
const isSetHandover = (command: string, input: Record<string, any>) =>
  command === "TransactWriteItemsCommand" &&
  String(input.TransactItems?.[0]?.Update?.UpdateExpression).includes("#state = :to");

/** Runs `first` just before the first request that matches is sent (a race lost by that request). */
function beforeFirst(
  match: (command: string, input: Record<string, any>) => boolean,
  first: () => Promise<void>,
) {
  const client = fx.r.region.app.dynamodb;
  const name = `before-first-${Math.random().toString(36).slice(2)}`;
  let done = false;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String((context as { commandName?: string }).commandName ?? "");
      if (!done && match(command, (args as { input: Record<string, any> }).input)) {
        done = true;
        await first();
      }
      return next(args);
    },
    { step: "initialize", name },
  );
  return { remove: () => client.middlewareStack.remove(name), ran: () => done };
}

it("a set whose one desktop another job took first provisions the other four, and leaves that one to its job", async () => {
  const { poolId, job, ids } = await poolOfFive();
  const [taken = ""] = ids;
  // Another delivery (or the reconciler's re-send) takes the first desktop between this job's read
  // of its set and its take: the set's transaction is cancelled, and each desktop is taken alone.
  const race = beforeFirst(isSetTake, async () => {
    const before = await desktopOf(poolId, taken);
    expect(await ports().desktops.takeForDiskJob(before, "PROVISIONING", { generation: 0 })).toBe(1);
  });
  try {
    await runOnce(job);
  } finally {
    race.remove();
  }
  expect(race.ran()).toBe(true);
  const after = await desktopsOf(poolId);
  const other = after.find((d) => d.desktopId === taken);
  expect(other).toMatchObject({ state: "PROVISIONING", generation: 1 });
  const made = after.filter((d) => d.desktopId !== taken);
  expect(made.map((d) => [d.state, d.generation])).toEqual(Array(4).fill(["AVAILABLE", 1]));
  expectOwnIntervals(made);
  for (const d of made) expect(await filesOf(poolId, d.desktopId)).toEqual([`${d.desktopId}.g1.qcow2`]);
  // The set's job wrote nothing for the desktop it did not take.
  expect(await filesOf(poolId, taken)).toEqual([]);

  // That desktop's own job (sent again) finishes it.
  await ports().jobs.send([
    { kind: "provision-desktop", tenantId: fx.tenant.tenantId, poolId, desktopId: taken },
  ]);
  await tap.drain();
  expect(await desktopOf(poolId, taken)).toMatchObject({ state: "AVAILABLE", generation: 2 });
});

for (const [what, match] of [
  ["take", isSetTake],
  ["handover", isSetHandover],
] as const)
  for (const tokens of [true, false])
    it(`a set whose ${what} was applied but its answer lost (the SDK retries it${tokens ? "" : ", without an idempotency token"}) is built and handed over once`, async () => {
      const { poolId, job } = await poolOfFive();
      // Without the token, the retry fails its conditions: the write must find its own success there.
      const untokened = tokens ? undefined : withoutIdempotencyTokens(fx.r.region.app.dynamodb);
      const lost = loseFirst(fx.r.region.app.dynamodb, match);
      try {
        await runOnce(job);
      } finally {
        lost.remove();
        untokened?.remove();
      }
      expect(lost.lost).toHaveLength(1);
      const after = await desktopsOf(poolId);
      // Each desktop taken once (generation 1), made once, handed over once.
      expect(after.map((d) => [d.state, d.generation])).toEqual(Array(5).fill(["AVAILABLE", 1]));
      expectOwnIntervals(after);
      for (const d of after) expect(await filesOf(poolId, d.desktopId)).toEqual([`${d.desktopId}.g1.qcow2`]);
    });

it("a set delivered twice, one after the other and at once, builds each disk once", async () => {
  const { poolId, job } = await poolOfFive();
  await Promise.all([tap.run(job), tap.run(job)]);
  await runOnce(job);
  const after = await desktopsOf(poolId);
  expect(after.map((d) => d.state)).toEqual(Array(5).fill("AVAILABLE"));
  // Each desktop went to the delivery that took it last, and only that generation's file is left.
  for (const d of after)
    expect(await filesOf(poolId, d.desktopId)).toEqual([`${d.desktopId}.g${d.generation}.qcow2`]);
});

it("a handover whose one desktop moved on (a later job took it) hands over the others, and removes only its own file", async () => {
  const { poolId, job, ids } = await poolOfFive();
  const moved = ids[2] ?? "";
  // The set stalls with its disks made, before its handover; meanwhile a later job takes one desktop.
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  let reached!: () => void;
  const arrived = new Promise<void>((r) => {
    reached = r;
  });
  setCheckpointHook(async (name, at) => {
    if (name !== "provision:before-available" || at.desktopId !== moved) return;
    reached();
    await released;
  });
  const running = tap.run(job);
  await arrived;
  const now = await desktopOf(poolId, moved);
  expect(now).toMatchObject({ state: "PROVISIONING", generation: 1 });
  expect(await ports().desktops.takeForDiskJob(now, "PROVISIONING", { generation: 1 })).toBe(2);
  release();
  expect(await running).toBe("done");
  await tap.ack(job);

  const after = await desktopsOf(poolId);
  expect(after.find((d) => d.desktopId === moved)).toMatchObject({ state: "PROVISIONING", generation: 2 });
  const others = after.filter((d) => d.desktopId !== moved);
  expect(others.map((d) => [d.state, d.generation])).toEqual(Array(4).fill(["AVAILABLE", 1]));
  expectOwnIntervals(others);
  // The stale generation's file is nobody's: gone. The later job has not written its own yet.
  expect(await filesOf(poolId, moved)).toEqual([]);
  for (const d of others) expect(await filesOf(poolId, d.desktopId)).toEqual([`${d.desktopId}.g1.qcow2`]);
});
