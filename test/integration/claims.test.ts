/**
 * Invariant 1 under lost answers: a write that succeeded in DynamoDB but whose answer was lost is
 * retried by the SDK and meets its own condition; it must count as done, never as a lost race.
 */
import { describe, expect, it } from "vitest";
import { keys } from "../../shared/adapters/dynamodb/keys.ts";
import { reconcile } from "../../shared/domain/reconcile.ts";
import { loseFirst } from "../support/lost-responses.ts";
import { expectStatus, readyPool, useTenantRegion, waitForCounts } from "./harness.ts";

const fx = useTenantRegion({ image: { blankSizeMiB: 16 }, region: { reconcileEveryMs: 0 } });

const isClaim = (command: string, input: Record<string, any>) =>
  command === "UpdateItemCommand" && String(input.UpdateExpression).includes("#state = :assigned");
const isLockPut = (command: string, input: Record<string, any>) =>
  command === "PutItemCommand" && String(input.Item?.sk?.S ?? "").startsWith("USER#");

async function counts(poolId: string) {
  return expectStatus(await fx.r.api("GET", `/v1/pools/${poolId}`, { key: fx.tenant.key }), 200)
    .desktopCounts;
}

const logon = (poolId: string, userId: string) =>
  fx.r.api("POST", `/v1/pools/${poolId}/logons`, { key: fx.tenant.key, body: { userId } });

describe("ambiguous writes at logon", () => {
  it("an ambiguous claim (applied, answer lost, retried) leaves no orphan session", async () => {
    const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 3);
    const lost = loseFirst(fx.r.region.app.dynamodb, isClaim);
    try {
      const first = expectStatus(await logon(poolId, "amy"), 200);
      expect(lost.lost).toHaveLength(1);
      // One session, on one desktop: the lost answer's desktop is the user's, not an orphan.
      expect((await counts(poolId)).ASSIGNED).toBe(1);
      const again = expectStatus(await logon(poolId, "amy"), 200);
      expect(again.sessionId).toBe(first.sessionId);
      expectStatus(
        await fx.r.api("POST", `/v1/sessions/${first.sessionId}/logoff`, { key: fx.tenant.key }),
        200,
      );
      await waitForCounts(fx.r, fx.tenant.key, poolId, { ASSIGNED: 0, AVAILABLE: 3 });
    } finally {
      lost.remove();
    }
  });

  it("an ambiguous user-lock write (applied, answer lost, retried) still logs the user on at once", async () => {
    const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 2);
    const lost = loseFirst(fx.r.region.app.dynamodb, isLockPut);
    try {
      const started = Date.now();
      const res = expectStatus(await logon(poolId, "bea"), 200);
      expect(lost.lost).toHaveLength(1);
      expect(res.reconnected).toBe(false);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect((await counts(poolId)).ASSIGNED).toBe(1);
    } finally {
      lost.remove();
    }
  });

  it("a logoff ends a session whose user lock is gone", async () => {
    const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 1);
    const s = expectStatus(await logon(poolId, "cid"), 200);
    const t = fx.r.region.app.ports;
    // The lock vanishes (e.g. released by an older build after an ambiguous claim).
    const { DeleteCommand } = await import("@aws-sdk/lib-dynamodb");
    const { documentClient } = await import("../../shared/adapters/dynamodb/client.ts");
    await documentClient(fx.r.region.app.dynamodb).send(
      new DeleteCommand({
        TableName: fx.r.region.app.config.tableName,
        Key: keys.userLock(fx.tenant.tenantId, poolId, "cid"),
      }),
    );
    const ended = expectStatus(
      await fx.r.api("POST", `/v1/sessions/${s.sessionId}/logoff`, { key: fx.tenant.key }),
      200,
    );
    expect(ended.state).toBe("ENDED");
    await waitForCounts(fx.r, fx.tenant.key, poolId, { AVAILABLE: 1 });
    expect((await t.sessions.get(fx.tenant.tenantId, s.sessionId))?.state).toBe("ENDED");
  });

  it("the reconciler repairs an ASSIGNED desktop whose user lock does not name its session", async () => {
    const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 1);
    const s = expectStatus(await logon(poolId, "dee"), 200);
    const { DeleteCommand } = await import("@aws-sdk/lib-dynamodb");
    const { documentClient } = await import("../../shared/adapters/dynamodb/client.ts");
    await documentClient(fx.r.region.app.dynamodb).send(
      new DeleteCommand({
        TableName: fx.r.region.app.config.tableName,
        Key: keys.userLock(fx.tenant.tenantId, poolId, "dee"),
      }),
    );
    const report = await reconcile(fx.r.region.app.ports, 0);
    expect(report.repaired?.["orphan-session"]).toBe(1);
    await waitForCounts(fx.r, fx.tenant.key, poolId, { AVAILABLE: 1, ASSIGNED: 0 });
    const session = expectStatus(
      await fx.r.api("GET", `/v1/sessions/${s.sessionId}`, { key: fx.tenant.key }),
      200,
    );
    expect(session).toMatchObject({ state: "ENDED", endedBy: "orphaned" });
  });
});
