/**
 * Model-based test on the local stack (fast-check): random interleavings of logons, reconnects,
 * API and event logoffs, duplicate and reordered clone-job deliveries, reconciler ticks,
 * recomposes, resizes and lost DynamoDB answers. After every step the invariants hold and the
 * table matches a small model. A failure prints its seed and path; replay it with
 * PRISTINE_MODEL_SEED=<seed> PRISTINE_MODEL_PATH=<path>. `npm test` runs a few runs,
 * `npm run test:stress` at least 200.
 */
import fc from "fast-check";
import { beforeAll, expect, it } from "vitest";
import { sendJson } from "../../shared/adapters/sqs/queue.ts";
import { reconcile } from "../../shared/domain/reconcile.ts";
import { logoffEvent } from "../../shared/messages/logoff-event.ts";
import { type Job, jobTap } from "../support/job-tap.ts";
import { loseFirst } from "../support/lost-responses.ts";
import { diskPathOf, expectStatus, readyImage, run, useTenantRegion, waitFor } from "./harness.ts";

const stress = process.env.PRISTINE_STRESS === "1";
const numRuns = Number(process.env.PRISTINE_MODEL_RUNS ?? (stress ? 200 : 4));

const fx = useTenantRegion({ region: { workers: ["user-data"], reconcileEveryMs: 0 } });
let clones: ReturnType<typeof jobTap>;
let logoffs: ReturnType<typeof jobTap>;
let imageId: string;

beforeAll(async () => {
  clones = jobTap(fx.r.region, "clone-worker");
  logoffs = jobTap(fx.r.region, "logoff");
  // Publishing runs through the clone worker, which only this test drives.
  const ready = readyImage(fx.r, fx.tenant.key, { blankSizeMiB: 8 });
  let settled = false;
  void ready.then(() => {
    settled = true;
  });
  await waitFor("v1 imported", async () => (await clones.drain()) >= 0 && settled);
  ({ imageId } = await ready);
  const v2 = expectStatus(
    await fx.r.api("POST", `/v1/images/${imageId}/versions`, {
      key: fx.tenant.key,
      body: { source: { blankSizeMiB: 8 } },
    }),
    202,
  );
  await waitFor("v2 imported", async () => {
    await clones.drain();
    const image = expectStatus(await fx.r.api("GET", `/v1/images/${imageId}`, { key: fx.tenant.key }), 200);
    return image.versions.find((v: any) => v.version === v2.version)?.state === "READY";
  });
}, 120_000);

type Lose = "lock" | "claim" | "end" | null;
type Command =
  | { t: "logon"; user: number; lose: Lose }
  | { t: "logoff-api"; user: number; lose: Lose }
  | { t: "logoff-event"; user: number }
  | { t: "repeat-logoff" }
  | { t: "deliver"; max: number; duplicate: boolean; order: number[] }
  | { t: "reconcile" }
  | { t: "recompose"; to: 1 | 2 }
  | { t: "resize"; size: number };

const users = ["ann", "bob", "cyd", "dee"];
const lose = fc.constantFrom<Lose>(null, null, "lock", "claim", "end");
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant("logon" as const), user: fc.nat(3), lose }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant("logoff-api" as const), user: fc.nat(3), lose }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("logoff-event" as const), user: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("repeat-logoff" as const) }) },
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant("deliver" as const),
      max: fc.integer({ min: 1, max: 8 }),
      duplicate: fc.boolean(),
      order: fc.array(fc.nat(1000), { minLength: 8, maxLength: 8 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("reconcile" as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("recompose" as const), to: fc.constantFrom<1 | 2>(1, 2) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("resize" as const), size: fc.integer({ min: 1, max: 4 }) }),
  },
);

/** What the system must look like: who has which session. */
interface Model {
  poolId: string;
  active: Map<string, { sessionId: string; desktopId: string }>;
  ended: string[];
}

const isWrite = {
  lock: (c: string, i: Record<string, any>) =>
    c === "PutItemCommand" && String(i.Item?.sk?.S ?? "").startsWith("USER#"),
  claim: (c: string, i: Record<string, any>) =>
    c === "UpdateItemCommand" && String(i.UpdateExpression).includes("#state = :assigned"),
  end: (c: string) => c === "TransactWriteItemsCommand",
};

const api = (method: string, path: string, body?: unknown) =>
  fx.r.api(method, path, { key: fx.tenant.key, ...(body !== undefined ? { body } : {}) });

async function desktopsOf(poolId: string) {
  return fx.r.region.app.ports.desktops.list(fx.tenant.tenantId, poolId);
}

/** Runs a command with one DynamoDB answer lost on the way, when asked to. */
async function withLost<T>(what: Lose, work: () => Promise<T>): Promise<T> {
  if (!what) return work();
  const lost = loseFirst(fx.r.region.app.dynamodb, isWrite[what]);
  try {
    return await work();
  } finally {
    lost.remove();
  }
}

async function deliver(max: number, duplicate: boolean, order: number[]) {
  const jobs: Job[] = await clones.take({ max: Math.min(10, max), waitSeconds: 0 });
  const shuffled = jobs
    .map((j, i) => ({ j, k: order[i] ?? i }))
    .sort((a, b) => a.k - b.k)
    .map((x) => x.j);
  for (const job of shuffled) {
    if (duplicate) await Promise.all([clones.run(job), clones.run(job)]);
    else await clones.run(job);
    await clones.ack(job);
  }
}

/** The invariants, and the table against the model, after every step. */
async function check(model: Model, step: string) {
  const desktops = await desktopsOf(model.poolId);
  const assigned = desktops.filter((d) => d.state === "ASSIGNED");
  // Invariant 1: one session per desktop (by construction) and per user in the pool.
  const byUser = new Map<string, number>();
  for (const d of assigned) byUser.set(d.userId ?? "", (byUser.get(d.userId ?? "") ?? 0) + 1);
  for (const [user, n] of byUser) expect(n, `${step}: ${user} holds ${n} desktops`).toBe(1);
  // The table holds exactly the model's sessions.
  const held = new Map(
    assigned.map((d) => [d.userId as string, { sessionId: d.sessionId, desktopId: d.desktopId }]),
  );
  expect(Object.fromEntries(held), step).toEqual(Object.fromEntries(model.active));
}

/** A desktop handed out at logon holds nothing of an earlier session (invariant 2). */
async function expectPristineAndMark(model: Model, desktopId: string, user: number) {
  const disk = await diskPathOf(fx.r, fx.tenant.tenantId, model.poolId, desktopId);
  const { stdout } = await run("qemu-io", ["-f", "qcow2", "-r", "-U", "-c", "read -P 0 0 64k", disk]);
  expect(stdout, `desktop ${desktopId} handed out with a previous session's data`).not.toContain(
    "Pattern verification failed",
  );
  await run("qemu-io", ["-f", "qcow2", "-c", `write -P ${0x10 + user} 0 64k`, disk]);
}

async function apply(model: Model, c: Command): Promise<void> {
  switch (c.t) {
    case "logon": {
      const userId = users[c.user] as string;
      const before = await desktopsOf(model.poolId);
      const free = before.filter((d) => d.state === "AVAILABLE").length;
      const res = await withLost(c.lose, () => api("POST", `/v1/pools/${model.poolId}/logons`, { userId }));
      const mine = model.active.get(userId);
      if (mine) {
        expect(res.status).toBe(200);
        expect(res.body.sessionId).toBe(mine.sessionId);
        expect(res.body.reconnected).toBe(true);
      } else if (free > 0) {
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        expect(res.body.reconnected).toBe(false);
        model.active.set(userId, { sessionId: res.body.sessionId, desktopId: res.body.desktopId });
        await expectPristineAndMark(model, res.body.desktopId, c.user);
      } else {
        expect(res.status).toBe(503);
      }
      return;
    }
    case "logoff-api":
    case "logoff-event": {
      const userId = users[c.user] as string;
      const mine = model.active.get(userId);
      if (!mine) return;
      if (c.t === "logoff-api") {
        const res = await withLost(c.lose, () => api("POST", `/v1/sessions/${mine.sessionId}/logoff`));
        expect(res.status).toBe(200);
        expect(res.body.state).toBe("ENDED");
      } else {
        await sendJson(fx.r.region.app.sqs, fx.r.region.queues.logoff.url, [
          logoffEvent({
            tenantId: fx.tenant.tenantId,
            sessionId: mine.sessionId,
            desktopId: mine.desktopId,
            at: new Date().toISOString(),
          }),
        ]);
        await logoffs.drain();
      }
      model.active.delete(userId);
      model.ended.push(mine.sessionId);
      return;
    }
    case "repeat-logoff": {
      const sessionId = model.ended.at(-1);
      if (!sessionId) return;
      const res = await api("POST", `/v1/sessions/${sessionId}/logoff`);
      expect(res.status).toBe(200);
      expect(res.body.state).toBe("ENDED");
      return;
    }
    case "deliver":
      return deliver(c.max, c.duplicate, c.order);
    case "reconcile": {
      const report = await reconcile(fx.r.region.app.ports, 0);
      expect(report.repaired["orphan-session"] ?? 0, "an orphan session appeared").toBe(0);
      return;
    }
    case "recompose": {
      const res = await api("POST", `/v1/pools/${model.poolId}/recompose`, { imageVersion: c.to });
      expect(res.status).toBe(202);
      return;
    }
    case "resize": {
      const res = await api("PATCH", `/v1/pools/${model.poolId}`, { size: c.size });
      expect([200, 409]).toContain(res.status);
      return;
    }
  }
}

/** Lets every job run and the reconciler repair, then nothing may be stuck. */
async function quiesce(model: Model) {
  await waitFor(
    "the pool settles",
    async () => {
      await clones.drain();
      await reconcile(fx.r.region.app.ports, 0);
      await clones.drain();
      const desktops = await desktopsOf(model.poolId);
      return desktops.every((d) => d.state === "AVAILABLE" || d.state === "ASSIGNED");
    },
    60_000,
    50,
  );
  await check(model, "after settling");
  for (const d of await desktopsOf(model.poolId))
    if (d.state === "AVAILABLE") {
      const { stdout } = await run("qemu-io", [
        "-f",
        "qcow2",
        "-r",
        "-U",
        "-c",
        "read -P 0 0 64k",
        await diskPathOf(fx.r, fx.tenant.tenantId, model.poolId, d.desktopId),
      ]);
      expect(stdout, `free desktop ${d.desktopId} is not pristine`).not.toContain(
        "Pattern verification failed",
      );
    }
}

async function runOnce(commands: Command[]) {
  const pool = expectStatus(
    await api("POST", "/v1/pools", { name: "model", imageId, imageVersion: 1, size: 3 }),
    201,
  );
  const model: Model = { poolId: pool.poolId, active: new Map(), ended: [] };
  await quiesce(model);
  for (const [i, c] of commands.entries()) {
    await apply(model, c);
    await check(model, `step ${i} ${JSON.stringify(c)}`);
  }
  await quiesce(model);
  // Clean up: the next run starts on a fresh pool and a small table.
  for (const [, s] of model.active) await api("POST", `/v1/sessions/${s.sessionId}/logoff`);
  expectStatus(await api("DELETE", `/v1/pools/${model.poolId}`), 202);
  await waitFor("model pool deleted", async () => {
    await clones.drain();
    return (await api("GET", `/v1/pools/${model.poolId}`)).status === 404;
  });
}

it(
  `the invariants hold over ${numRuns} random interleavings (ambiguous writes and duplicate jobs included)`,
  async () => {
    const seed = process.env.PRISTINE_MODEL_SEED ? Number(process.env.PRISTINE_MODEL_SEED) : undefined;
    const path = process.env.PRISTINE_MODEL_PATH;
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 5, maxLength: stress ? 30 : 15 }), (commands) =>
        runOnce(commands),
      ),
      {
        numRuns,
        ...(seed !== undefined ? { seed } : {}),
        ...(path ? { path } : {}),
        // Shrinking reruns against the real stack: only when asked to.
        endOnFailure: process.env.PRISTINE_MODEL_SHRINK !== "1",
        verbose: 1,
      },
    );
  },
  stress ? 3_600_000 : 300_000,
);
