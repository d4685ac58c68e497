/**
 * The fenced writes of a disk job, for one desktop or a set: a take (the generation raised) and a
 * handover (the state moved on, fenced by the generation). A set's writes go in one transaction,
 * which saves the client a round trip per desktop; when it is cancelled (one desktop moved on, or
 * another transaction touched one), each desktop is written by itself, so that one desktop never
 * stops the others.
 */
import { randomUUID } from "node:crypto";
import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { assertTransition, type DesktopState } from "../../../domain/desktop-state.ts";
import type { Desktop } from "../../../domain/model.ts";
import type { DiskFence, DiskTake, Handover } from "../../../ports/index.ts";
import { isConditionFailure, itemAtFailure, transact } from "../errors.ts";
import { keys, watch } from "../keys.ts";
import { assignments, type Table } from "../table.ts";
import { freeIndex, watchIndex } from "../table-schema.ts";
import { sessionActivityAttributes } from "./sessions.ts";

/** A transaction holds at most 100 items. */
const maxTransactItems = 100;

type Ref = Pick<Desktop, "tenantId" | "poolId" | "desktopId">;
type Update = {
  Key: Record<string, unknown>;
  UpdateExpression: string;
  ConditionExpression: string;
  ExpressionAttributeNames: Record<string, string>;
  ExpressionAttributeValues: Record<string, unknown>;
};

/** The fence's condition: the generation a job read (a desktop never fenced has none). */
function generationIs(generation: number | undefined, values: Record<string, unknown>): string {
  if (generation) {
    values[":gen"] = generation;
    return "generation = :gen";
  }
  values[":gen0"] = 0;
  return "(attribute_not_exists(generation) OR generation = :gen0)";
}

/** The write that moves a desktop from `from` to `to` (with `fence`, only in the generation it names). */
export function transitionUpdate(
  d: Ref & Pick<Desktop, "assignedUserId">,
  from: DesktopState,
  to: DesktopState,
  changes: Handover["changes"] = {},
  fence: DiskFence | undefined,
  spreadToken: () => string,
): Update {
  assertTransition(from, to);
  const fields = assignments(changes, "c");
  const sets = ["#state = :to", "updatedAt = :now", ...fields.sets];
  const removes: string[] = ["resentAt"];
  const values: Record<string, unknown> = {
    ":from": from,
    ":to": to,
    ":now": new Date().toISOString(),
    ...fields.values,
  };
  const names: Record<string, string> = { "#state": "state", ...fields.names };
  let condition = "#state = :from";
  if (fence) condition += ` AND ${generationIs(fence.generation, values)}`;
  // The watch index follows the state: a transitional state waits from now, others are not watched.
  const watchPk = watch.desktopPartition(to, d.desktopId);
  if (watchPk) {
    sets.push(`${watchIndex.pk} = :wpk`, `${watchIndex.sk} = :now`);
    values[":wpk"] = watchPk;
  } else removes.push(watchIndex.pk, watchIndex.sk);
  if (to === "AVAILABLE") {
    // A dedicated desktop waits for its own user, who finds it through the owner item; a floating
    // one goes back into the free index at its own place (its `spread`, set at creation).
    if (!d.assignedUserId) {
      sets.push(`${freeIndex.pk} = :free`, `${freeIndex.sk} = if_not_exists(spread, :spread)`);
      values[":free"] = keys.freeDesktops(d.tenantId, d.poolId);
      values[":spread"] = spreadToken();
    }
    removes.push(
      "sessionId",
      "userId",
      "sessionStartedAt",
      "connectedSessionId",
      "#error",
      ...sessionActivityAttributes,
    );
    names["#error"] = "error";
  } else if (from === "AVAILABLE") {
    removes.push(freeIndex.pk, freeIndex.sk);
  }
  // A VM being (re)started serves no screen until its agent says it is ready again.
  if (to === "STARTING" && changes.console === undefined) {
    removes.push("#console");
    names["#console"] = "console";
  }
  return {
    Key: keys.desktop(d.tenantId, d.poolId, d.desktopId),
    UpdateExpression: `SET ${sets.join(", ")} REMOVE ${removes.join(", ")}`,
    ConditionExpression: condition,
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  };
}

/**
 * The write that takes a desktop for a disk job: its generation raised, conditional on its state
 * and on what the job read. `token` marks the take as this call's, so that a retried write that
 * meets its own success knows it.
 */
function takeUpdate(d: Ref, state: DesktopState, expect: DiskTake["expect"], token: string): Update {
  const values: Record<string, unknown> = {
    ":state": state,
    ":next": (expect.generation ?? 0) + 1,
    ":token": token,
    ":now": new Date().toISOString(),
    ":wpk": watch.desktopPartition(state, d.desktopId) ?? watch.partition("TRANSIT", d.desktopId),
  };
  let condition = `#state = :state AND ${generationIs(expect.generation, values)}`;
  if (expect.lastSessionId !== undefined) {
    condition += " AND lastSessionId = :sid";
    values[":sid"] = expect.lastSessionId;
  }
  return {
    Key: keys.desktop(d.tenantId, d.poolId, d.desktopId),
    // A taken desktop waits again from now (a disk job is a transitional state's work).
    UpdateExpression: `SET generation = :next, takenBy = :token, updatedAt = :now, diskJobStartedAt = :now, ${watchIndex.pk} = :wpk, ${watchIndex.sk} = :now REMOVE resentAt`,
    ConditionExpression: condition,
    ExpressionAttributeNames: { "#state": "state" },
    ExpressionAttributeValues: values,
  };
}

export async function transition(
  t: Table,
  d: Ref & Pick<Desktop, "assignedUserId">,
  from: DesktopState,
  to: DesktopState,
  changes: Handover["changes"],
  fence: DiskFence | undefined,
  spreadToken: () => string,
): Promise<boolean> {
  const update = transitionUpdate(d, from, to, changes, fence, spreadToken);
  try {
    await t.doc.send(
      new UpdateCommand({ TableName: t.name, ...update, ReturnValuesOnConditionCheckFailure: "ALL_OLD" }),
    );
    return true;
  } catch (err) {
    // A fenced transition whose answer was lost finds itself done: the generation is its own.
    const old = itemAtFailure(err);
    if (old && fence && old.state === to && old.generation === fence.generation) return true;
    if (isConditionFailure(err)) return false;
    throw err;
  }
}

export async function takeForDiskJob(
  t: Table,
  d: Ref,
  state: DesktopState,
  expect: DiskTake["expect"],
): Promise<number | undefined> {
  const token = randomUUID();
  try {
    await t.doc.send(
      new UpdateCommand({
        TableName: t.name,
        ...takeUpdate(d, state, expect, token),
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      }),
    );
    return (expect.generation ?? 0) + 1;
  } catch (err) {
    if (itemAtFailure(err)?.takenBy === token) return (expect.generation ?? 0) + 1;
    // Another delivery of the job (or a later job) took it first, or the desktop moved on.
    if (isConditionFailure(err)) return undefined;
    throw err;
  }
}

/** Runs `write` for each item (an Update each) in one transaction; undefined when it was cancelled. */
async function allAtOnce<I>(
  t: Table,
  items: I[],
  write: (item: I) => Update,
): Promise<{ ok: true } | { ok: false; olds: (Record<string, unknown> | undefined)[] }> {
  const result = await transact(
    t.doc,
    Object.fromEntries(
      items.map((item, i) => [
        `d${i}`,
        { Update: { TableName: t.name, ...write(item), ReturnValuesOnConditionCheckFailure: "ALL_OLD" } },
      ]),
    ),
    // A collision with another transaction is no failure of the set: its desktops go one by one.
    { conflictIsRetry: false },
  );
  return result.ok ? result : { ok: false, olds: items.map((_, i) => result.olds[`d${i}`]) };
}

/**
 * Takes a set's desktops in one transaction. Answers each one's new generation (undefined: not
 * taken). A transaction is all or nothing: a retry that meets any of its items taken by its own
 * token (its answer was lost) was applied whole. Otherwise (another job took one, or it moved on)
 * each desktop is taken by itself.
 */
export async function takeMany(t: Table, takes: DiskTake[]): Promise<(number | undefined)[]> {
  const next = (take: DiskTake) => (take.expect.generation ?? 0) + 1;
  if (takes.length > 1 && takes.length <= maxTransactItems) {
    const token = randomUUID();
    const result = await allAtOnce(t, takes, (k) => takeUpdate(k.desktop, k.state, k.expect, token));
    if (result.ok || result.olds.some((old) => old?.takenBy === token)) return takes.map(next);
  }
  return Promise.all(takes.map((k) => takeForDiskJob(t, k.desktop, k.state, k.expect)));
}

/**
 * Hands a set's desktops over (each fenced by its own generation) in one transaction. Answers
 * whether each moved. A retry that meets any of its desktops already moved in that desktop's own
 * generation (its answer was lost) was applied whole. Otherwise each desktop is moved by itself:
 * those whose generation is still their job's move, the others (taken by a later job) do not.
 */
export async function handOverMany(
  t: Table,
  handovers: Handover[],
  spreadToken: () => string,
): Promise<boolean[]> {
  const one = (h: Handover) => transition(t, h.desktop, h.from, h.to, h.changes, h.fence, spreadToken);
  if (handovers.length > 1 && handovers.length <= maxTransactItems) {
    const result = await allAtOnce(t, handovers, (h) =>
      transitionUpdate(h.desktop, h.from, h.to, h.changes, h.fence, spreadToken),
    );
    const moved = (h: Handover, old: Record<string, unknown> | undefined) =>
      old?.state === h.to && old.generation === h.fence.generation;
    if (result.ok || handovers.some((h, i) => moved(h, result.olds[i]))) return handovers.map(() => true);
  }
  return Promise.all(handovers.map(one));
}
