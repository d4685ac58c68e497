/**
 * The logon path's folded writes: each one that replaces a read (or a read and a write) keeps what
 * the read made sure of, when it is refused, repeated, or its answer is lost.
 * - A first logon's user data is created already attached to its session.
 * - The floating claim answers the desktop as it took the session.
 * - A ticket is made without reading the user's ticket first.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { describe, expect, it } from "vitest";
import { documentClient } from "../../shared/adapters/dynamodb/client.ts";
import { entities } from "../../shared/adapters/dynamodb/entities.ts";
import { newTicketId } from "../../shared/domain/logon-queue.ts";
import { newSession } from "../../shared/domain/sessions.ts";
import { attachUserData } from "../../shared/domain/user-data.ts";
import { loseFirst } from "../support/lost-responses.ts";
import { expectStatus, readyPool, useTenantRegion, waitFor } from "./harness.ts";

const fx = useTenantRegion({ image: { blankSizeMiB: 16 }, region: { userDataSizeBytes: 16 * 1024 * 1024 } });
const ports = () => fx.r.region.app.ports;
const ref = (userId: string) => ({ tenantId: fx.tenant.tenantId, userId });
const api = (method: string, path: string, body?: unknown) =>
  fx.r.api(method, path, { key: fx.tenant.key, ...(body === undefined ? {} : { body }) });
const logon = (poolId: string, userId: string) => api("POST", `/v1/pools/${poolId}/logons`, { userId });

/** Runs `then` once, right after the first request that `match` has been answered. */
function afterFirst(
  client: DynamoDBClient,
  match: (command: string, input: Record<string, any>) => boolean,
  then: () => Promise<void>,
) {
  const name = `after-first-${Math.random().toString(36).slice(2)}`;
  let done = false;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const out = await next(args);
      const command = String((context as { commandName?: string }).commandName ?? "");
      if (!done && match(command, (args as { input: Record<string, any> }).input)) {
        done = true;
        await then();
      }
      return out;
    },
    { step: "deserialize", name },
  );
  return { remove: () => client.middlewareStack.remove(name) };
}

const backingOf = async (path: string) =>
  JSON.parse((await promisify(execFile)("qemu-img", ["info", "--output=json", "-U", path])).stdout)[
    "backing-filename"
  ] as string;

describe("a first logon's user data", () => {
  it("is created attached to the session, and a second run or a lost answer ends the same", async () => {
    const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 2);
    const s = expectStatus(await logon(poolId, "ann"), 200);
    await waitFor("ann's data attached", async () => {
      const session = expectStatus(await api("GET", `/v1/sessions/${s.sessionId}`), 200);
      return session.userData.state === "ATTACHED";
    });
    const record = await ports().userData.get(ref("ann"));
    expect(record).toMatchObject({ version: 0, attachedSessionId: s.sessionId, attachedVersion: 0 });
    // SQS delivers at least once: the job again changes nothing.
    const job = { ...ref("ann"), sessionId: s.sessionId };
    expect(await attachUserData(ports(), job)).toBe("attached v0");
    expect(await ports().userData.get(ref("ann"))).toEqual(record);

    // The create applied, its answer lost: the SDK's retry meets the session's own record.
    const isCreate = (command: string, input: Record<string, any>) =>
      command === "PutItemCommand" && input.Item?.sk?.S === "USERDATA#bob";
    const lost = loseFirst(fx.r.region.app.dynamodb, isCreate);
    try {
      expect(await attachUserData(ports(), { ...ref("bob"), sessionId: "s-bob", vm: false })).toBe(
        "attached v0",
      );
      expect(lost.lost).toHaveLength(1);
    } finally {
      lost.remove();
    }
    expect(await ports().userData.get(ref("bob"))).toMatchObject({ version: 0, attachedSessionId: "s-bob" });
    expect(await ports().userDataStore.hasOverlay(ref("bob"), "s-bob")).toBe(true);
  });

  it("made meanwhile at a later version: the overlay on version 0 goes, the session attaches to that version", async () => {
    const store = ports().userDataStore;
    // Version 1 of cid's disk, as a commit (or the peer region) makes it.
    await store.ensureBlank(ref("cid"), 16 * 1024 * 1024);
    await store.ensureOverlay(ref("cid"), "s-old", 0);
    const { sha256 } = await store.commitOverlay(ref("cid"), "s-old", 0);
    await store.removeOverlay(ref("cid"), "s-old");
    const now = new Date().toISOString();
    // The record appears right after the job has read that there is none.
    const isRead = (command: string, input: Record<string, any>) =>
      command === "GetItemCommand" && input.Key?.sk?.S === "USERDATA#cid";
    const race = afterFirst(fx.r.region.app.dynamodb, isRead, async () => {
      await documentClient(fx.r.region.app.dynamodb).send(
        new PutCommand({
          TableName: fx.r.region.app.config.tableName,
          Item: entities.userData.toItem({
            ...ref("cid"),
            version: 1,
            sha256,
            sizeBytes: 16 * 1024 * 1024,
            lastChangeAt: now,
            createdAt: now,
            replicatedVersion: 1,
          }),
        }),
      );
    });
    try {
      expect(await attachUserData(ports(), { ...ref("cid"), sessionId: "s-new", vm: false })).toBe(
        "attached v1",
      );
    } finally {
      race.remove();
    }
    expect(await ports().userData.get(ref("cid"))).toMatchObject({
      version: 1,
      attachedSessionId: "s-new",
      attachedVersion: 1,
    });
    // The session's disk is on version 1, not on the blank disk the job first made it on.
    expect(await backingOf(store.overlayPath(ref("cid"), "s-new"))).toMatch(/disk-v1\.qcow2$/);
  });
});

describe("the floating claim", () => {
  it("answers the desktop as it took the session, with its answer lost too", async () => {
    const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 2);
    const free = await ports().desktops.findFree(fx.tenant.tenantId, poolId, 2);
    const clock = { clock: fx.r.region.app.ports.clock };
    const first = await ports().sessions.assign(newSession(clock, free[0] as any, "dee"));
    expect(first.outcome).toBe("assigned");
    if (first.outcome !== "assigned") return;
    expect(first.desktop).toMatchObject({
      state: "ASSIGNED",
      sessionId: first.session.sessionId,
      userId: "dee",
    });

    const isClaim = (command: string, input: Record<string, any>) =>
      command === "UpdateItemCommand" && String(input.UpdateExpression).includes("#state = :assigned");
    const lost = loseFirst(fx.r.region.app.dynamodb, isClaim);
    try {
      const second = await ports().sessions.assign(newSession(clock, free[1] as any, "eve"));
      expect(lost.lost).toHaveLength(1);
      expect(second).toMatchObject({ outcome: "assigned", desktop: { state: "ASSIGNED", userId: "eve" } });
    } finally {
      lost.remove();
    }
  });
});

describe("a ticket made without reading the user's first", () => {
  /** A self-sizing pool that cannot grow (its datastore has no room): its tickets only wait. */
  async function stuckPool(name: string, maxSize: number, ticketTimeoutSeconds: number) {
    const path = join(fx.r.dataDir, "datastores", name);
    const body = { datastoreId: name, path, capacityGiB: 0.001 };
    expectStatus(await fx.r.api("POST", "/v1/admin/datastores", { key: fx.r.operatorKey, body }), 201);
    const pool = expectStatus(
      await api("POST", "/v1/pools", {
        name,
        imageId: fx.imageId,
        minSize: 0,
        maxSize,
        spare: 0,
        ticketTimeoutSeconds,
        datastoreIds: [name],
      }),
      201,
    );
    return pool.poolId as string;
  }

  it("answers the user's ticket while it runs, in a full line too; another user gets 503", async () => {
    const poolId = await stuckPool("no-room-1", 1, 60);
    const ticket = expectStatus(await logon(poolId, "fay"), 202);
    const again = expectStatus(await logon(poolId, "fay"), 202);
    expect(again).toMatchObject({ ticketId: ticket.ticketId, state: "WAITING", position: 0 });
    expect((await logon(poolId, "gus")).status).toBe(503);

    // A pointer written before it kept its ticket's time is read, not replaced.
    await documentClient(fx.r.region.app.dynamodb).send(
      new PutCommand({
        TableName: fx.r.region.app.config.tableName,
        Item: entities.userTicket.toItem({ ...ref("fay"), poolId, ticketId: ticket.ticketId }),
      }),
    );
    expect(expectStatus(await logon(poolId, "fay"), 202).ticketId).toBe(ticket.ticketId);
    expect(await ports().logonQueue.waiting(fx.tenant.tenantId, poolId)).toBe(1);
  });

  it("a ticket whose write lands after the server served past its time joins the line's end", async () => {
    const poolId = await stuckPool("no-room-3", 5, 60);
    const first = expectStatus(await logon(poolId, "ivy"), 202);
    const queue = ports().logonQueue;
    // The server reads a page through a ticket made a little from now, and fences it.
    const fence = newTicketId(new Date(Date.now() + 80));
    await queue.fenceServing(fx.tenant.tenantId, poolId, fence);
    // A ticket made before the fence (its write came late) is refused, changing nothing.
    const late = {
      ...ref("joe"),
      poolId,
      ticketId: newTicketId(new Date(Date.now() - 1000)),
      state: "WAITING" as const,
      createdAt: new Date().toISOString(),
      validUntil: new Date(Date.now() + 60_000).toISOString(),
    };
    expect(await queue.enqueue(late, 5, undefined)).toBe("behind");
    expect(await queue.waiting(fx.tenant.tenantId, poolId)).toBe(1);
    // A logon whose first ticket id is behind the fence gets a later one, behind the page.
    const next = expectStatus(await logon(poolId, "kim"), 202);
    expect(next.ticketId > fence).toBe(true);
    expect(next.ticketId > first.ticketId).toBe(true);
    const line = await queue.oldestWaiting(fx.tenant.tenantId, poolId, 10);
    expect(line.map((t) => t.userId)).toEqual(["ivy", "kim"]);
  });

  it("replaces a ticket whose time ran out; the old one expires and the line's count stays true", async () => {
    const poolId = await stuckPool("no-room-2", 3, 1);
    const first = expectStatus(await logon(poolId, "hal"), 202);
    await new Promise((r) => setTimeout(r, 1_200));
    const second = expectStatus(await logon(poolId, "hal"), 202);
    expect(second.ticketId).not.toBe(first.ticketId);
    expect(second.state).toBe("WAITING");
    await waitFor("both tickets expired, none left waiting", async () => {
      const states = await Promise.all(
        [first, second].map(
          async (t) => expectStatus(await api("GET", `/v1/pools/${poolId}/logons/${t.ticketId}`), 200).state,
        ),
      );
      const waiting = await ports().logonQueue.waiting(fx.tenant.tenantId, poolId);
      return states.every((s) => s === "EXPIRED") && waiting === 0;
    });
  });
  it("refused by the user's lock: a user on reconnects, in a full pool too; a lock with no session keeps no one out", async () => {
    const roomy = expectStatus(
      await api("POST", "/v1/pools", {
        name: "roomy",
        imageId: fx.imageId,
        minSize: 1,
        maxSize: 3,
        spare: 0,
      }),
      201,
    ).poolId as string;
    const full = expectStatus(
      await api("POST", "/v1/pools", { name: "full", imageId: fx.imageId, minSize: 1, maxSize: 1, spare: 0 }),
      201,
    ).poolId as string;
    for (const poolId of [roomy, full]) {
      await waitFor("the pool's desktop", async () => {
        const p = expectStatus(await api("GET", `/v1/pools/${poolId}`), 200);
        return p.desktopCounts.AVAILABLE === 1;
      });
      const on = expectStatus(await logon(poolId, "ivy"), 200);
      // No desktop free: the ticket's write meets ivy's lock (roomy) or the line is full (full).
      const again = expectStatus(await logon(poolId, "ivy"), 200);
      expect(again).toMatchObject({ sessionId: on.sessionId, reconnected: true });
    }
    // A lock whose desktop never took its session (a logon that died between its two writes).
    const [desktop] = (await ports().desktops.list(fx.tenant.tenantId, roomy)) as any[];
    const ghost = {
      ...newSession({ clock: ports().clock }, desktop, "jay"),
      sessionId: `${desktop.desktopId}-s-ghost`,
    };
    await documentClient(fx.r.region.app.dynamodb).send(
      new PutCommand({ TableName: fx.r.region.app.config.tableName, Item: entities.userLock.toItem(ghost) }),
    );
    expect(expectStatus(await logon(roomy, "jay"), 202)).toMatchObject({ state: "WAITING", userId: "jay" });
  });
});
