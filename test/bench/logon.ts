/**
 * Logon storm: N concurrent logons on an N-desktop pool through the api handler, against a
 * baseline of one query plus one conditional update per logon on the same DynamoDB Local.
 */

import { CreateTableCommand } from "@aws-sdk/client-dynamodb";
import { PutCommand, QueryCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { APIGatewayProxyEventV2, Context } from "aws-lambda";
import { documentClient } from "../../shared/adapters/dynamodb/client.ts";
import { apiHandler } from "../../shared/http/api.ts";
import { type BenchEnv, readyPool } from "./env.ts";
import { percentile, printJson, printTable, round } from "./report.ts";

const N = Number(process.env.BENCH_LOGONS ?? 500);

async function baseline(env: BenchEnv): Promise<{ perSecond: number; p50: number; p99: number }> {
  const doc = documentClient(env.dynamo.endpoint, "us-east-1");
  const TableName = "bench-baseline";
  await doc.send(
    new CreateTableCommand({
      TableName,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: [
        { AttributeName: "pk", AttributeType: "S" },
        { AttributeName: "sk", AttributeType: "S" },
      ],
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
    }),
  );
  for (let i = 0; i < N; i++) {
    await doc.send(new PutCommand({ TableName, Item: { pk: `ITEM#${i}`, sk: "ITEM", state: "FREE" } }));
  }
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const t0 = performance.now();
      await doc.send(
        new QueryCommand({
          TableName,
          KeyConditionExpression: "pk = :pk",
          ExpressionAttributeValues: { ":pk": `ITEM#${i}` },
        }),
      );
      await doc.send(
        new UpdateCommand({
          TableName,
          Key: { pk: `ITEM#${i}`, sk: "ITEM" },
          UpdateExpression: "SET #s = :taken, userId = :u",
          ConditionExpression: "#s = :free",
          ExpressionAttributeNames: { "#s": "state" },
          ExpressionAttributeValues: { ":taken": "TAKEN", ":free": "FREE", ":u": `user-${i}` },
        }),
      );
      latencies.push(performance.now() - t0);
    }),
  );
  const elapsed = performance.now() - started;
  doc.destroy();
  latencies.sort((a, b) => a - b);
  return { perSecond: (N * 1000) / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

function logonEvent(poolId: string, key: string, userId: string): APIGatewayProxyEventV2 {
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: `/v1/pools/${poolId}/logons`,
    rawQueryString: "",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    requestContext: { http: { method: "POST", path: `/v1/pools/${poolId}/logons` } },
    body: JSON.stringify({ userId }),
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEventV2;
}

export async function benchLogon(env: BenchEnv): Promise<void> {
  const pool = await readyPool(env, N);
  const handler = apiHandler(env.region.app);
  // Count claim attempts: a storm's cost is mostly lost races on the same free desktops.
  const { sessions, desktops: desktopRepo } = env.region.app.ports;
  const assign = sessions.assign.bind(sessions);
  const findFree = desktopRepo.findFree.bind(desktopRepo);
  let claimAttempts = 0;
  let freeQueries = 0;
  sessions.assign = (d, s) => {
    claimAttempts++;
    return assign(d, s);
  };
  desktopRepo.findFree = (t, p, n) => {
    freeQueries++;
    return findFree(t, p, n);
  };
  const context = { awsRequestId: "bench", functionName: "api" } as Context;
  // Warm the key cache and the connections as a warm Lambda would be.
  await handler(
    {
      ...logonEvent(pool.poolId, pool.key, "x"),
      rawPath: `/v1/pools/${pool.poolId}`,
      requestContext: { http: { method: "GET" } },
    } as never,
    context,
  );

  const latencies: number[] = [];
  const results: { status: number; body: any }[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const t0 = performance.now();
      const res = await handler(logonEvent(pool.poolId, pool.key, `user-${i}`), context);
      latencies.push(performance.now() - t0);
      results.push({ status: res.statusCode ?? 0, body: JSON.parse(res.body ?? "{}") });
    }),
  );
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);

  const ok = results.filter((r) => r.status === 200);
  const perDesktop = new Map<string, number>();
  for (const r of ok) perDesktop.set(r.body.desktopId, (perDesktop.get(r.body.desktopId) ?? 0) + 1);
  let doubleAssignments = [...perDesktop.values()].filter((n) => n > 1).length;
  // Cross-check the table: every ASSIGNED desktop holds exactly the session handed out for it.
  const bySession = new Map(ok.map((r) => [r.body.sessionId as string, r.body.desktopId as string]));
  const desktops = await env.region.app.ports.desktops.list(pool.tenantId, pool.poolId);
  for (const d of desktops)
    if (d.state === "ASSIGNED" && bySession.get(d.sessionId ?? "") !== d.desktopId) doubleAssignments++;

  const base = await baseline(env);
  const logonsPerSecond = (N * 1000) / elapsed;
  const figures = {
    bench: "logon",
    logons: N,
    served: ok.length,
    refused: results.length - ok.length,
    logonsPerSecond: round(logonsPerSecond, 1),
    p50Ms: round(percentile(latencies, 50), 1),
    p99Ms: round(percentile(latencies, 99), 1),
    doubleAssignments,
    baselinePerSecond: round(base.perSecond, 1),
    baselineP50Ms: round(base.p50, 1),
    ratioToBaseline: round(logonsPerSecond / base.perSecond, 3),
    claimAttemptsPerLogon: round(claimAttempts / N, 2),
    freeQueriesPerLogon: round(freeQueries / N, 2),
  };
  printTable(`logon storm: ${N} concurrent logons on a ${N}-desktop floating pool (DynamoDB Local)`, [
    ["logons served / refused", `${figures.served} / ${figures.refused}`],
    ["logons per second", figures.logonsPerSecond],
    ["latency p50 / p99 (ms)", `${figures.p50Ms} / ${figures.p99Ms}`],
    ["double assignments", figures.doubleAssignments],
    ["baseline: query + conditional update per s", figures.baselinePerSecond],
    ["baseline p50 (ms)", figures.baselineP50Ms],
    ["ratio to baseline (target >= 0.5)", figures.ratioToBaseline],
    [
      "claim attempts / free-list queries per logon",
      `${figures.claimAttemptsPerLogon} / ${figures.freeQueriesPerLogon}`,
    ],
    ["(pool provisioning, s)", round(pool.provisionMs / 1000, 1)],
  ]);
  printJson(figures);
}
