import { writeFile } from "node:fs/promises";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { sendJson } from "../../shared/adapters/sqs/queue.ts";
import { logoffEvent } from "../../shared/messages/logoff-event.ts";
import {
  diskFilesOf,
  diskPathOf,
  expectStatus,
  importPath,
  newTenant,
  readyPool,
  run,
  useTenantRegion,
  waitFor,
  waitForCounts,
  waitUntilDrained,
} from "./harness.ts";

const fx = useTenantRegion({ image: { blankSizeMiB: 64 } });

const diskOf = (poolId: string, desktopId: string) => diskPathOf(fx.r, fx.tenant.tenantId, poolId, desktopId);

describe("logon storm", () => {
  it("60 concurrent logons on 40 desktops: 40 sessions on 40 distinct desktops and 20 503s", async () => {
    const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 40);
    const responses = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        fx.r.api("POST", `/v1/pools/${poolId}/logons`, { key: fx.tenant.key, body: { userId: `user-${i}` } }),
      ),
    );
    const ok = responses.filter((x) => x.status === 200);
    const refused = responses.filter((x) => x.status === 503);
    expect(ok).toHaveLength(40);
    expect(refused).toHaveLength(20);
    expect(new Set(ok.map((x) => x.body.desktopId)).size).toBe(40);
    expect(new Set(ok.map((x) => x.body.userId)).size).toBe(40);
    for (const x of refused) {
      expect(x.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(x.headers.get("content-type")).toContain("application/problem+json");
      expect(x.body.type).toMatch(/no-desktop-available$/);
    }
    const desktops = expectStatus(
      await fx.r.api("GET", `/v1/pools/${poolId}/desktops`, { key: fx.tenant.key }),
      200,
    ).items;
    const assigned = desktops.filter((d: any) => d.state === "ASSIGNED");
    expect(assigned).toHaveLength(40);
    // Each desktop records exactly the session that was handed out for it.
    const bySession = new Map(ok.map((x) => [x.body.sessionId, x.body.desktopId]));
    for (const d of assigned) expect(bySession.get(d.sessionId)).toBe(d.desktopId);
  });

  it("a user's repeated and concurrent logons all get the same session", async () => {
    const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 3);
    const burst = await Promise.all(
      Array.from({ length: 6 }, () =>
        fx.r.api("POST", `/v1/pools/${poolId}/logons`, { key: fx.tenant.key, body: { userId: "bob" } }),
      ),
    );
    for (const x of burst) expect(x.status).toBe(200);
    expect(new Set(burst.map((x) => x.body.sessionId)).size).toBe(1);
    const again = expectStatus(
      await fx.r.api("POST", `/v1/pools/${poolId}/logons`, { key: fx.tenant.key, body: { userId: "bob" } }),
      200,
    );
    expect(again.sessionId).toBe(burst[0]?.body.sessionId);
    expect(again.reconnected).toBe(true);
    const counts = (await fx.r.api("GET", `/v1/pools/${poolId}`, { key: fx.tenant.key })).body.desktopCounts;
    expect(counts).toMatchObject({ ASSIGNED: 1, AVAILABLE: 2 });
  });
});

describe("linked clones and logoff refresh", () => {
  let poolId: string;
  beforeAll(async () => {
    poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 2);
  });

  it("a desktop is a qcow2 overlay whose backing file is the replica", async () => {
    const desktops = (await fx.r.api("GET", `/v1/pools/${poolId}/desktops`, { key: fx.tenant.key })).body
      .items;
    const replica = fx.r.paths.replica(
      { tenantId: fx.tenant.tenantId, imageId: fx.imageId, version: 1 },
      "ds-default",
    );
    for (const d of desktops) {
      const info = JSON.parse(
        (await run("qemu-img", ["info", "--output=json", "-U", await diskOf(poolId, d.desktopId)])).stdout,
      );
      expect(info.format).toBe("qcow2");
      expect(info["full-backing-filename"] ?? info["backing-filename"]).toBe(replica);
    }
  });

  it("after logoff the desktop is AVAILABLE and identical to its replica although the user wrote to it", async () => {
    const session = expectStatus(
      await fx.r.api("POST", `/v1/pools/${poolId}/logons`, { key: fx.tenant.key, body: { userId: "carol" } }),
      200,
    );
    const disk = await diskOf(poolId, session.desktopId);
    const replica = fx.r.paths.replica(
      { tenantId: fx.tenant.tenantId, imageId: fx.imageId, version: 1 },
      "ds-default",
    );
    await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0xab 1M 4M", disk]);
    await expect(run("qemu-img", ["compare", "-U", disk, replica])).rejects.toMatchObject({ code: 1 });

    const ended = expectStatus(
      await fx.r.api("POST", `/v1/sessions/${session.sessionId}/logoff`, { key: fx.tenant.key }),
      200,
    );
    expect(ended.state).toBe("ENDED");
    await waitFor("desktop AVAILABLE again", async () => {
      const ds = (await fx.r.api("GET", `/v1/pools/${poolId}/desktops`, { key: fx.tenant.key })).body.items;
      return ds.find((d: any) => d.desktopId === session.desktopId)?.state === "AVAILABLE";
    });
    // The refresh made the desktop a new disk (its next generation): the old one, with the writes, is gone.
    const fresh = await diskOf(poolId, session.desktopId);
    expect(fresh).not.toBe(disk);
    const { stdout } = await run("qemu-img", ["compare", "-U", fresh, replica]);
    expect(stdout).toContain("Images are identical");
    // A second logoff is harmless and reports the same ended session.
    const again = expectStatus(
      await fx.r.api("POST", `/v1/sessions/${session.sessionId}/logoff`, { key: fx.tenant.key }),
      200,
    );
    expect(again.endedAt).toBe(ended.endedAt);
  });

  it("duplicate and stale logoff events change nothing", async () => {
    const first = expectStatus(
      await fx.r.api("POST", `/v1/pools/${poolId}/logons`, { key: fx.tenant.key, body: { userId: "dave" } }),
      200,
    );
    const event = logoffEvent({
      tenantId: fx.tenant.tenantId,
      sessionId: first.sessionId,
      desktopId: first.desktopId,
      at: new Date().toISOString(),
    });
    await sendJson(fx.r.region.app.sqs, fx.r.region.queues.logoff.url, [event, event]);
    await waitFor("session ended by event", async () => {
      const s = (await fx.r.api("GET", `/v1/sessions/${first.sessionId}`, { key: fx.tenant.key })).body;
      return s.state === "ENDED";
    });
    const ended = (await fx.r.api("GET", `/v1/sessions/${first.sessionId}`, { key: fx.tenant.key })).body;
    expect(ended.endedBy).toBe("event");
    await waitForCounts(fx.r, fx.tenant.key, poolId, { AVAILABLE: 2, REFRESHING: 0 });

    // Fill the pool so dave's old desktop is certainly re-assigned, then replay the stale event.
    const users = ["erin", "frank"];
    const sessions = await Promise.all(
      users.map(async (u) =>
        expectStatus(
          await fx.r.api("POST", `/v1/pools/${poolId}/logons`, { key: fx.tenant.key, body: { userId: u } }),
          200,
        ),
      ),
    );
    await sendJson(fx.r.region.app.sqs, fx.r.region.queues.logoff.url, [event]);
    // An event for an unknown session is acknowledged too; wait until both are consumed.
    const bogus = logoffEvent({ ...event.detail, sessionId: "ses-doesnotexist" });
    await sendJson(fx.r.region.app.sqs, fx.r.region.queues.logoff.url, [bogus]);
    await waitUntilDrained(fx.r, fx.r.region.queues.logoff.url);
    for (const s of sessions) {
      expect((await fx.r.api("GET", `/v1/sessions/${s.sessionId}`, { key: fx.tenant.key })).body.state).toBe(
        "ACTIVE",
      );
    }
    expect(
      (await fx.r.api("GET", `/v1/pools/${poolId}`, { key: fx.tenant.key })).body.desktopCounts,
    ).toMatchObject({ ASSIGNED: 2 });
  });
});

describe("tenancy and input", () => {
  it("tenant B gets 404 for tenant A's pool, session and image", async () => {
    const other = await newTenant(fx.r, "other");
    const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 1);
    const s = expectStatus(
      await fx.r.api("POST", `/v1/pools/${poolId}/logons`, { key: fx.tenant.key, body: { userId: "gina" } }),
      200,
    );
    for (const [method, path, body] of [
      ["GET", `/v1/pools/${poolId}`],
      ["GET", `/v1/pools/${poolId}/desktops`],
      ["POST", `/v1/pools/${poolId}/logons`, { userId: "mallory" }],
      ["DELETE", `/v1/pools/${poolId}`],
      ["GET", `/v1/sessions/${s.sessionId}`],
      ["POST", `/v1/sessions/${s.sessionId}/logoff`],
      ["GET", `/v1/images/${fx.imageId}`],
    ] as const) {
      const res = await fx.r.api(method, path, { key: other.key, ...(body ? { body } : {}) });
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    expect((await fx.r.api("GET", "/v1/pools", { key: other.key })).body.items).toEqual([]);
    expect((await fx.r.api("GET", `/v1/sessions/${s.sessionId}`, { key: fx.tenant.key })).body.state).toBe(
      "ACTIVE",
    );
  });

  it("bad input gets a 4xx problem that names the field and changes nothing", async () => {
    const k = fx.tenant.key;
    const before = (await fx.r.api("GET", "/v1/pools", { key: k })).body.items.length;
    const cases: [string, string, { body?: unknown; raw?: string }, number, string | undefined][] = [
      ["POST", "/v1/pools", { body: { name: "x", imageId: fx.imageId, size: 0 } }, 400, "body.size"],
      ["POST", "/v1/pools", { body: { name: "x", imageId: fx.imageId, size: "ten" } }, 400, "body.size"],
      ["POST", "/v1/pools", { body: { name: "x", size: 2 } }, 400, "body.imageId"],
      [
        "POST",
        "/v1/pools",
        { body: { name: "x", imageId: fx.imageId, size: 2, colour: "red" } },
        400,
        "body",
      ],
      ["POST", "/v1/pools", { raw: "{not json" }, 400, "body"],
      ["POST", "/v1/pools", {}, 400, "body"],
      ["POST", "/v1/pools", { raw: JSON.stringify({ name: "x".repeat(70_000) }) }, 413, undefined],
      ["POST", "/v1/images", { body: { name: "" } }, 400, "body.name"],
      [
        "POST",
        `/v1/images/${fx.imageId}/versions`,
        { body: { source: { blankSizeMiB: -1 } } },
        400,
        "body.source",
      ],
      [
        "POST",
        `/v1/images/${fx.imageId}/versions`,
        { body: { source: { path: "/etc/passwd" } } },
        400,
        "source.path",
      ],
      ["POST", "/v1/pools/pool-nope/logons", { body: { userId: "" } }, 400, "body.userId"],
      ["POST", "/v1/pools/pool-nope/logons", { body: { userId: "a b" } }, 400, "body.userId"],
      ["GET", "/v1/pools/bad%20id", {}, 400, "path.poolId"],
    ];
    for (const [method, path, opts, status, field] of cases) {
      const res = await fx.r.api(method, path, { key: k, ...opts });
      expect(res.status, `${method} ${path} ${JSON.stringify(opts).slice(0, 80)}`).toBe(status);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      expect(res.body.type).toMatch(/^https:\/\/pristine\.dev\/problems\//);
      if (field)
        expect(res.body.field, JSON.stringify(res.body)).toMatch(new RegExp(`^${field.replace(".", "\\.")}`));
    }
    expect((await fx.r.api("GET", "/v1/pools", { key: k })).body.items.length).toBe(before);
  });

  it("routing and authentication errors are problems too", async () => {
    expect((await fx.r.api("GET", "/v1/nothing-here", { key: fx.tenant.key })).status).toBe(404);
    const wrongMethod = await fx.r.api("PUT", "/v1/pools", { key: fx.tenant.key, body: {} });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toBe("POST, GET");
    expect((await fx.r.api("GET", "/v1/pools")).status).toBe(401);
    expect((await fx.r.api("GET", "/v1/pools", { key: "prs_wrong" })).status).toBe(401);
    expect(
      (await fx.r.api("POST", "/v1/admin/tenants", { key: fx.tenant.key, body: { name: "x" } })).status,
    ).toBe(403);
    expect((await fx.r.api("GET", "/health")).status).toBe(200);
  });

  it("a file that is not a disk image is refused at publish", async () => {
    const notADisk = await importPath(fx.r, fx.tenant.tenantId, "notes.txt");
    await writeFile(notADisk, "hello, not a disk\n");
    const image = expectStatus(
      await fx.r.api("POST", "/v1/images", { key: fx.tenant.key, body: { name: "bad" } }),
      201,
    );
    const res = await fx.r.api("POST", `/v1/images/${image.imageId}/versions`, {
      key: fx.tenant.key,
      body: { source: { path: notADisk } },
    });
    expect(res.status).toBe(400);
    expect(res.body.detail).toMatch(/not a disk image/);
    expect(
      (await fx.r.api("GET", `/v1/images/${image.imageId}`, { key: fx.tenant.key })).body.versions,
    ).toEqual([]);
  });
});

describe("pool deletion", () => {
  it("logs users off, deletes every desktop and its delta, then the pool", async () => {
    const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 3);
    const s = expectStatus(
      await fx.r.api("POST", `/v1/pools/${poolId}/logons`, { key: fx.tenant.key, body: { userId: "hank" } }),
      200,
    );
    const desktops = (await fx.r.api("GET", `/v1/pools/${poolId}/desktops`, { key: fx.tenant.key })).body
      .items;
    expect(
      expectStatus(await fx.r.api("DELETE", `/v1/pools/${poolId}`, { key: fx.tenant.key }), 202).state,
    ).toBe("DELETING");
    // 409 while the pool drains, 404 once the workers have removed it (they may be that quick).
    expect([409, 404]).toContain(
      (await fx.r.api("POST", `/v1/pools/${poolId}/logons`, { key: fx.tenant.key, body: { userId: "ian" } }))
        .status,
    );
    await waitFor(
      "pool gone",
      async () => (await fx.r.api("GET", `/v1/pools/${poolId}`, { key: fx.tenant.key })).status === 404,
    );
    expect((await fx.r.api("GET", `/v1/sessions/${s.sessionId}`, { key: fx.tenant.key })).body).toMatchObject(
      {
        state: "ENDED",
        endedBy: "pool-delete",
      },
    );
    for (const d of desktops)
      expect(await diskFilesOf(fx.r, fx.tenant.tenantId, poolId, d.desktopId)).toEqual([]);
  });
});

describe("Idempotency-Key", () => {
  it("a retried write returns the first answer and creates nothing twice; another body is refused", async () => {
    const headers = { "idempotency-key": "create-pool-42" };
    const body = { name: "once", imageId: fx.imageId, size: 1 };
    const call = (b: unknown) =>
      fetch(`${fx.r.region.apiUrl}/v1/pools`, {
        method: "POST",
        headers: { ...headers, authorization: `Bearer ${fx.tenant.key}`, "content-type": "application/json" },
        body: JSON.stringify(b),
      });
    const first = await call(body);
    const second = await call(body);
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    const [a, b] = [(await first.json()) as any, (await second.json()) as any];
    expect(b.poolId).toBe(a.poolId);
    const pools = (await fx.r.api("GET", "/v1/pools", { key: fx.tenant.key })).body.items.filter(
      (p: any) => p.name === "once",
    );
    expect(pools).toHaveLength(1);
    const reused = await call({ ...body, size: 2 });
    expect(reused.status).toBe(422);
    expect(((await reused.json()) as any).field).toBe("headers.idempotency-key");
  });

  it("the idempotency utility knows the Lambda context, so it warns of no unknown time left", async () => {
    const warn = vi.spyOn(console, "warn");
    try {
      const res = await fetch(`${fx.r.region.apiUrl}/v1/images`, {
        method: "POST",
        headers: {
          "idempotency-key": "image-ctx",
          authorization: `Bearer ${fx.tenant.key}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ name: "with-context" }),
      });
      expect(res.status).toBe(201);
      const warned = warn.mock.calls.map((c) => String(c[0]));
      expect(warned.filter((w) => /remaining time/i.test(w))).toEqual([]);
    } finally {
      warn.mockRestore();
    }
  });

  it("tenant creation is never replayed, so its API key is never stored", async () => {
    const create = () =>
      fetch(`${fx.r.region.apiUrl}/v1/admin/tenants`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${fx.r.operatorKey}`,
          "idempotency-key": "t-1",
          "content-type": "application/json",
        },
        body: JSON.stringify({ name: "twice" }),
      }).then((res) => res.json() as Promise<any>);
    const [a, b] = [await create(), await create()];
    expect(a.apiKey).toMatch(/^prs_/);
    expect(b.tenantId).not.toBe(a.tenantId);
  });
});
