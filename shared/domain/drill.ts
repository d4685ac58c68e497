/**
 * DR drills: desktops from the replicated pools and images, every user with replicated data (or a
 * sample) logged on with their data checked against the source's checksum, RPO and RTO measured,
 * then the drill's desktops and sessions removed. User data is never committed by a drill.
 *
 * The drill is a step machine: each delivery of its `run-drill` job does one short step from the
 * saved phase (decided in drill-steps.ts) and queues the next one, with a pause while it waits.
 * A message carries the step it is for, so a duplicate or a late copy finds the drill moved on.
 */
import type { ReplicationMessage } from "../messages/replication.ts";
import type { Ports } from "../ports/index.ts";
import type { DefaultDatastore } from "./datastores.ts";
import type { Drill } from "./dr-model.ts";
import { type DrillObservation, decideDrillStep } from "./drill-steps.ts";
import { DomainError, invalid, notFound, RetryLater } from "./errors.ts";
import { newId } from "./ids.ts";
import { logon } from "./logon.ts";
import { createPool, deletePool, listPools } from "./pools.ts";
import { liveStandbyPools } from "./replication-config.ts";

type DrillPorts = Pick<
  Ports,
  | "logonQueue"
  | "metrics"
  | "hosts"
  | "dr"
  | "replication"
  | "clock"
  | "userData"
  | "userDataStore"
  | "userDataJobs"
  | "images"
  | "pools"
  | "desktops"
  | "sessions"
  | "jobs"
  | "datastores"
  | "peer"
  | "region"
>;

/** The pause between two looks while a drill waits (SQS delays are whole seconds). */
const waitSeconds = 1;
/**
 * How long, and how often, a look at the drill's desktops looks again before its step ends: the
 * RTO counts the wait after the last desktop is made, which whole-second steps made up to a second
 * (578 ms of a 100-desktop drill's 2.2 s once here). Every 200 ms, or less often for big pools: a
 * look lists their desktops, and the looks list at most about 500 of them a second.
 */
const desktopWatchMs = 3000;
const desktopWatchEveryMs = (desktops: number) => Math.max(200, desktops * 2);

export async function startDrill(
  ports: Pick<Ports, "dr" | "replication" | "clock">,
  tenantId: string,
  input: { pools: string[]; sampleUsers?: number | undefined },
): Promise<Drill> {
  const state = await ports.dr.getState(tenantId);
  const standby = new Set(liveStandbyPools(state).map((p) => p.poolId));
  const deleted = new Set(state?.deletedPools ?? []);
  input.pools.forEach((p, i) => {
    if (deleted.has(p))
      throw new DomainError(
        "poolDeleted",
        `pools[${i}]: pool ${p} was deleted in the primary region; its standby configuration here is gone too`,
        { field: `pools[${i}]` },
      );
    if (!standby.has(p))
      throw invalid(`pools[${i}]`, `pool ${p} has no replicated configuration in this region`);
  });
  const now = ports.clock.now().toISOString();
  const drill: Drill = {
    tenantId,
    drillId: newId("drl"),
    state: "RUNNING",
    phase: "STARTING",
    phaseStartedAt: now,
    steps: 0,
    pools: input.pools,
    ...(input.sampleUsers ? { sampleUsers: input.sampleUsers } : {}),
    startedAt: now,
  };
  await ports.dr.putDrill(drill);
  await ports.replication.send([{ kind: "run-drill", tenantId, drillId: drill.drillId, step: 0 }]);
  return drill;
}

export async function getDrill(ports: Pick<Ports, "dr">, tenantId: string, drillId: string) {
  const drill = await ports.dr.getDrill(tenantId, drillId);
  if (!drill) throw notFound("drill", drillId);
  return drill;
}

/** One delivery of the drill's job: one step, saved only if no other delivery saved it first. */
export async function runDrillStep(
  ports: DrillPorts,
  m: Extract<ReplicationMessage, { kind: "run-drill" }>,
  defaults: DefaultDatastore,
): Promise<string> {
  const drill = await getDrill(ports, m.tenantId, m.drillId);
  const step = drill.steps ?? 0;
  if (drill.state !== "RUNNING") return `skipped: drill is ${drill.state}`;
  if ((m.step ?? 0) === step - 1) return watchForStall(ports, m, drill);
  if ((m.step ?? 0) !== step) return `skipped: step ${m.step ?? 0} is stale (the drill is at step ${step})`;
  let patch: Partial<Drill>;
  let next: "now" | "wait" | "done";
  try {
    const decision = decideDrillStep(drill, await observe(ports, drill, defaults), ports.clock.now());
    if ("fail" in decision) throw new Error(decision.fail);
    ({ patch, next } = decision);
  } catch (err) {
    if (err instanceof RetryLater) throw err;
    const now = ports.clock.now().toISOString();
    const error = drill.error ?? (err as Error).message;
    // A drill that cannot go on still removes what it made; a cleanup that fails ends it.
    ({ patch, next } =
      drill.phase === "CLEANING_UP"
        ? { patch: { phase: "DONE", state: "FAILED", error, finishedAt: now }, next: "done" }
        : { patch: { phase: "CLEANING_UP", phaseStartedAt: now, error }, next: "now" });
  }
  const saved: Drill = { ...drill, ...patch, steps: step + 1, stepAt: ports.clock.now().toISOString() };
  if (!(await ports.dr.putDrill(saved, step))) {
    // Another delivery saved it, or this one did and its answer was lost: look again later.
    await ports.replication.send([m], { delaySeconds: stallSeconds });
    return `deferred: step ${step} was saved by another delivery (or this one, its answer lost)`;
  }
  if (next !== "done")
    await ports.replication.send(
      [{ kind: "run-drill", tenantId: m.tenantId, drillId: m.drillId, step: step + 1 }],
      next === "wait" ? { delaySeconds: waitSeconds } : {},
    );
  return `drill ${drill.drillId} step ${step}: ${drill.phase} -> ${saved.phase}${next === "wait" ? " (waiting)" : ""}`;
}

/** A drill whose last step is older than this lost the message of its next step. */
const stallSeconds = 10;

/**
 * A delivery of the step before the drill's current one: that step was saved, but the message of
 * the next may never have been sent (a failed send, a lost answer). If the drill does not move on
 * within `stallSeconds`, its current step is sent again (a duplicate of it is harmless: saves are
 * conditional on the step).
 */
async function watchForStall(
  ports: DrillPorts,
  m: Extract<ReplicationMessage, { kind: "run-drill" }>,
  drill: Drill,
): Promise<string> {
  const step = drill.steps ?? 0;
  const still = ports.clock.now().getTime() - Date.parse(drill.stepAt ?? drill.startedAt);
  if (still < stallSeconds * 1000) {
    await ports.replication.send([m], { delaySeconds: Math.ceil(stallSeconds - still / 1000) });
    return `deferred: step ${m.step} ran; checking that the drill moves on`;
  }
  await ports.replication.send([{ ...m, step }]);
  return `resent step ${step}: the drill stood still for ${Math.round(still / 1000)} s`;
}

/** Does the work of the drill's current phase and says what it saw. Every step is idempotent. */
async function observe(
  ports: DrillPorts,
  drill: Drill,
  defaults: DefaultDatastore,
): Promise<DrillObservation> {
  const { tenantId } = drill;
  switch (drill.phase) {
    case "STARTING": {
      const users = (await ports.userData.list(tenantId)).filter((u) => u.version > 0).map((u) => u.userId);
      const changes = await ports.userData.listChanges(tenantId);
      return { phase: "STARTING", users, changes, regionName: ports.region.name };
    }
    case "PROVISIONING":
      return { phase: "PROVISIONING", drillPools: await provisionDrillPools(ports, drill, defaults) };
    case "WAITING_FOR_DESKTOPS": {
      const until = performance.now() + desktopWatchMs;
      for (;;) {
        const desktops = (
          await Promise.all((drill.drillPools ?? []).map((p) => ports.desktops.list(tenantId, p)))
        ).flat();
        const available = desktops.filter((d) => d.state === "AVAILABLE").length;
        if ((desktops.length > 0 && available === desktops.length) || performance.now() >= until)
          return { phase: "WAITING_FOR_DESKTOPS", available, total: desktops.length };
        await new Promise((r) => setTimeout(r, desktopWatchEveryMs(desktops.length)));
      }
    }
    case "LOGGING_ON": {
      const pools = drill.drillPools ?? [];
      // A logon of a user who is on already reconnects, so a repeated step makes no second session.
      const sessions = await Promise.all(
        (drill.users ?? []).map(async (userId, i) => {
          const poolId = pools[i % pools.length] as string;
          const result = await logon(ports, tenantId, poolId, userId);
          // A drill's pools are fixed and waited for: a ticket means a desktop is not back yet.
          if (!("session" in result)) throw new RetryLater(`${userId} is queued in drill pool ${poolId}`);
          return { sessionId: result.session.sessionId, userId, poolId };
        }),
      );
      return { phase: "LOGGING_ON", sessions };
    }
    case "WAITING_FOR_USER_DATA": {
      const attachedAt = { ...drill.attachedAt };
      await Promise.all(
        (drill.sessions ?? []).map(async (s) => {
          if (attachedAt[s.userId] !== undefined) return;
          const record = await ports.userData.get({ tenantId, userId: s.userId });
          if (record?.attachedSessionId === s.sessionId)
            attachedAt[s.userId] = Date.parse(record.attachedAt ?? ports.clock.now().toISOString());
        }),
      );
      return { phase: "WAITING_FOR_USER_DATA", attachedAt };
    }
    case "VERIFYING":
      return { phase: "VERIFYING", failed: await verifyUserData(ports, drill) };
    case "CLEANING_UP": {
      // Discard before the pools' deletion ends the sessions: a drill never changes user data.
      // The sessions are the ones on the drill's desktops: a LOGGING_ON that failed half way never
      // recorded the ones it made.
      const pools = drill.drillPools ?? (await drillPoolsByName(ports, drill));
      const desktops = (await Promise.all(pools.map((p) => ports.desktops.list(tenantId, p)))).flat();
      await ports.userDataJobs.send(
        desktops.flatMap((d) =>
          d.state === "ASSIGNED" && d.sessionId && d.userId
            ? [{ kind: "discard-user-data" as const, tenantId, sessionId: d.sessionId, userId: d.userId }]
            : [],
        ),
      );
      for (const p of pools)
        await deletePool(ports, tenantId, p).catch((err: unknown) => {
          if (!(err instanceof DomainError && err.problem === "notFound")) throw err;
        });
      return { phase: "CLEANING_UP" };
    }
    case "DONE":
      throw new Error("the drill is done");
  }
}

const drillPoolName = (drill: Drill, sourceName: string) => `drill-${drill.drillId}-${sourceName}`;

/** The drill's pools found by their names, so a repeated step reuses what an earlier one made. */
async function drillPoolsByName(ports: Pick<Ports, "pools">, drill: Drill): Promise<string[]> {
  const prefix = drillPoolName(drill, "");
  return (await listPools(ports, drill.tenantId))
    .filter((p) => p.name.startsWith(prefix))
    .map((p) => p.poolId);
}

async function provisionDrillPools(ports: DrillPorts, drill: Drill, defaults: DefaultDatastore) {
  const state = await ports.dr.getState(drill.tenantId);
  const sources = liveStandbyPools(state).filter((p) => drill.pools.includes(p.poolId));
  const existing = new Map((await listPools(ports, drill.tenantId)).map((p) => [p.name, p.poolId] as const));
  const users = drill.users ?? [];
  const poolIds: string[] = [];
  for (const src of sources) {
    const name = drillPoolName(drill, src.name);
    const made = existing.get(name);
    if (made) {
      poolIds.push(made);
      continue;
    }
    // At least one desktop per user, so every user is served at once.
    const size = Math.max(src.size, Math.ceil(users.length / sources.length));
    const pool = await createPool(
      ports,
      drill.tenantId,
      { name, imageId: src.imageId, imageVersion: src.imageVersion, size },
      defaults,
    );
    poolIds.push(pool.poolId);
  }
  return poolIds;
}

/** Each user's data here must be the source's version, by content checksum. */
async function verifyUserData(ports: DrillPorts, drill: Drill) {
  const changes = await ports.userData.listChanges(drill.tenantId);
  const failed: { userId: string; reason: string }[] = [];
  for (const userId of drill.users ?? []) {
    const ref = { tenantId: drill.tenantId, userId };
    const record = await ports.userData.get(ref);
    const source = changes.find((c) => c.userId === userId && c.version === record?.version);
    if (!record || !source) {
      failed.push({ userId, reason: "no replicated version" });
      continue;
    }
    const actual = await ports.userDataStore.contentSha256(ref, record.attachedVersion ?? record.version);
    if (actual !== source.sha256)
      failed.push({ userId, reason: `checksum ${actual} != source ${source.sha256}` });
  }
  return failed;
}
