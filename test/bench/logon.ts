/**
 * Logon storm: N concurrent logons on an N-desktop pool through the api handler, against
 * baselines of one query plus one conditional update per logon on the same DynamoDB Local.
 */

import { CreateTableCommand } from "@aws-sdk/client-dynamodb";
import { PutCommand, QueryCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { invokeLocally } from "../../local/lambda-context.ts";
import { documentClient, ensureTable } from "../../shared/adapters/dynamodb/client.ts";
import { apiHandler } from "../../shared/http/api.ts";
import { type BenchEnv, readyPool } from "./env.ts";
import { median, percentile, printJson, printTable, round } from "./report.ts";

const N = Number(process.env.BENCH_LOGONS ?? 500);

interface Rate {
  perSecond: number;
  p50: number;
  p99: number;
}

async function storm(run: (i: number) => Promise<void>): Promise<Rate> {
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const t0 = performance.now();
      await run(i);
      latencies.push(performance.now() - t0);
    }),
  );
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return { perSecond: (N * 1000) / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

const phi = (Math.sqrt(5) - 1) / 2;
const spread = (slot: number) =>
  Math.floor((slot * phi - Math.floor(slot * phi)) * 2 ** 52)
    .toString(16)
    .padStart(13, "0");

/**
 * The baseline on the same data model: per logon one query of the free index and one
 * conditional update that takes the desktop out of it (what a logon without the per-user lock,
 * sessions and the API would cost), on a table of the same schema in the same DynamoDB Local.
 */
async function sameModelBaseline(env: BenchEnv, round: number): Promise<Rate> {
  const doc = documentClient(env.dynamo.endpoint, "us-east-1");
  const TableName = "bench-same-model";
  await ensureTable(doc, TableName);
  for (let i = 0; i < N; i++) {
    await doc.send(
      new PutCommand({
        TableName,
        Item: {
          pk: `POOL#b${round}`,
          sk: `DESKTOP#${i}`,
          state: "AVAILABLE",
          gsi1pk: `FREE#b${round}`,
          gsi1sk: spread(i),
        },
      }),
    );
  }
  const rate = await storm(async (i) => {
    for (let attempt = 0; attempt < 50; attempt++) {
      const out = await doc.send(
        new QueryCommand({
          TableName,
          IndexName: "gsi1",
          KeyConditionExpression: "gsi1pk = :p AND gsi1sk >= :t",
          ExpressionAttributeValues: { ":p": `FREE#b${round}`, ":t": spread(i + attempt) },
          Limit: 1,
        }),
      );
      const item = out.Items?.[0];
      if (!item) continue;
      try {
        await doc.send(
          new UpdateCommand({
            TableName,
            Key: { pk: item.pk, sk: item.sk },
            UpdateExpression: "SET #s = :assigned, userId = :u REMOVE gsi1pk, gsi1sk",
            ConditionExpression: "#s = :available",
            ExpressionAttributeNames: { "#s": "state" },
            ExpressionAttributeValues: {
              ":assigned": "ASSIGNED",
              ":available": "AVAILABLE",
              ":u": `user-${i}`,
            },
          }),
        );
        return;
      } catch {
        // taken meanwhile: look again
      }
    }
  });
  doc.destroy();
  return rate;
}

/** A plain key-value floor: one query and one conditional update on items nobody else touches. */
async function keyValueBaseline(env: BenchEnv, round: number): Promise<Rate> {
  const doc = documentClient(env.dynamo.endpoint, "us-east-1");
  const TableName = "bench-baseline";
  if (round === 0)
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
    await doc.send(
      new PutCommand({ TableName, Item: { pk: `ITEM#${round}#${i}`, sk: "ITEM", state: "FREE" } }),
    );
  }
  const rate = await storm(async (i) => {
    await doc.send(
      new QueryCommand({
        TableName,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": `ITEM#${round}#${i}` },
      }),
    );
    await doc.send(
      new UpdateCommand({
        TableName,
        Key: { pk: `ITEM#${round}#${i}`, sk: "ITEM" },
        UpdateExpression: "SET #s = :taken, userId = :u",
        ConditionExpression: "#s = :free",
        ExpressionAttributeNames: { "#s": "state" },
        ExpressionAttributeValues: { ":taken": "TAKEN", ":free": "FREE", ":u": `user-${i}` },
      }),
    );
  });
  doc.destroy();
  return rate;
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

interface StormResult {
  rate: Rate;
  served: number;
  refused: number;
  doubleAssignments: number;
}

/** One storm of N logons on a fresh N-desktop pool (made by readyPool), through the api handler. */
async function logonStorm(env: BenchEnv, pool: Awaited<ReturnType<typeof readyPool>>): Promise<StormResult> {
  const api = apiHandler(env.region.app);
  const handler = (event: APIGatewayProxyEventV2) =>
    invokeLocally("api", 30_000, (context) => api(event, context));
  // Warm the key cache and the connections as a warm Lambda would be.
  await handler({
    ...logonEvent(pool.poolId, pool.key, "x"),
    rawPath: `/v1/pools/${pool.poolId}`,
    requestContext: { http: { method: "GET" } },
  } as never);
  const results: { status: number; body: any }[] = [];
  const rate = await storm(async (i) => {
    const res = await handler(logonEvent(pool.poolId, pool.key, `user-${i}`));
    results.push({ status: res.statusCode ?? 0, body: JSON.parse(res.body ?? "{}") });
  });
  const ok = results.filter((r) => r.status === 200);
  const perDesktop = new Map<string, number>();
  for (const r of ok) perDesktop.set(r.body.desktopId, (perDesktop.get(r.body.desktopId) ?? 0) + 1);
  let doubleAssignments = [...perDesktop.values()].filter((n) => n > 1).length;
  // Cross-check the table: every ASSIGNED desktop holds exactly the session handed out for it.
  const bySession = new Map(ok.map((r) => [r.body.sessionId as string, r.body.desktopId as string]));
  for (const d of await env.region.app.ports.desktops.list(pool.tenantId, pool.poolId))
    if (d.state === "ASSIGNED" && bySession.get(d.sessionId ?? "") !== d.desktopId) doubleAssignments++;
  return { rate, served: ok.length, refused: results.length - ok.length, doubleAssignments };
}

/**
 * Rounds of [same-model baseline, logon storm, key-value floor] on the same DynamoDB Local, so
 * that each ratio compares runs made seconds apart; the figures are the rounds' medians.
 */
export async function benchLogon(env: BenchEnv): Promise<void> {
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  // Count claim attempts: a storm's cost is mostly lost races on the same free desktops.
  const { sessions, desktops: desktopRepo } = env.region.app.ports;
  const assign = sessions.assign.bind(sessions);
  const findFree = desktopRepo.findFree.bind(desktopRepo);
  let claimAttempts = 0;
  let freeQueries = 0;
  sessions.assign = (s, o) => {
    claimAttempts++;
    return assign(s, o);
  };
  desktopRepo.findFree = (t, p, n) => {
    freeQueries++;
    return findFree(t, p, n);
  };
  const per: { base: Rate; logon: StormResult; keyValue: Rate }[] = [];
  for (let round = 0; round < rounds; round++) {
    // Provisioning first (it also warms DynamoDB Local up), then the three storms back to back.
    const pool = await readyPool(env, N);
    const base = await sameModelBaseline(env, round);
    const logon = await logonStorm(env, pool);
    const keyValue = await keyValueBaseline(env, round);
    per.push({ base, logon, keyValue });
  }
  const ratios = per.map((r) => r.logon.rate.perSecond / r.base.perSecond);
  const kvRatios = per.map((r) => r.logon.rate.perSecond / r.keyValue.perSecond);
  const figures = {
    bench: "logon",
    logons: N,
    rounds,
    served: per.reduce((n, r) => n + r.logon.served, 0),
    refused: per.reduce((n, r) => n + r.logon.refused, 0),
    logonsPerSecond: round(median(per.map((r) => r.logon.rate.perSecond)), 1),
    p50Ms: round(median(per.map((r) => r.logon.rate.p50)), 1),
    p99Ms: round(median(per.map((r) => r.logon.rate.p99)), 1),
    doubleAssignments: per.reduce((n, r) => n + r.logon.doubleAssignments, 0),
    baselinePerSecond: round(median(per.map((r) => r.base.perSecond)), 1),
    baselineP50Ms: round(median(per.map((r) => r.base.p50)), 1),
    ratioToBaseline: round(median(ratios), 3),
    ratiosByRound: ratios.map((x) => round(x, 3)),
    keyValueBaselinePerSecond: round(median(per.map((r) => r.keyValue.perSecond)), 1),
    ratioToKeyValueBaseline: round(median(kvRatios), 3),
    claimAttemptsPerLogon: round(claimAttempts / (N * rounds), 2),
    freeQueriesPerLogon: round(freeQueries / (N * rounds), 2),
  };
  printTable(
    `logon storm: ${N} concurrent logons on a ${N}-desktop floating pool, ${rounds} rounds (DynamoDB Local)`,
    [
      ["logons served / refused (all rounds)", `${figures.served} / ${figures.refused}`],
      ["logons per second (median)", figures.logonsPerSecond],
      ["latency p50 / p99 (ms, median)", `${figures.p50Ms} / ${figures.p99Ms}`],
      ["double assignments (all rounds)", figures.doubleAssignments],
      ["baseline, same model: free-index query + conditional claim per s", figures.baselinePerSecond],
      ["ratio to baseline by round", figures.ratiosByRound.join(" / ")],
      ["ratio to baseline, median (target >= 0.5)", figures.ratioToBaseline],
      ["key-value floor: key query + conditional update per s", figures.keyValueBaselinePerSecond],
      ["ratio to the key-value floor, median", figures.ratioToKeyValueBaseline],
      [
        "claim attempts / free-list queries per logon",
        `${figures.claimAttemptsPerLogon} / ${figures.freeQueriesPerLogon}`,
      ],
    ],
  );
  printJson(figures);
}
