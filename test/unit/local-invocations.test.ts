/**
 * The local runtime runs many invocations of one function's handler at once in one process (the
 * pollers' concurrency, the API server), as Lambda does only with several invocations per
 * execution environment. Powertools keeps a batch's state and the logger's keys per invocation
 * only inside an invocation's own context: these tests overlap two invocations the way the
 * pollers do and check that neither sees the other's state.
 */
import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { afterEach, expect, it, vi } from "vitest";
import { z } from "zod";
import { invokeLocally } from "../../local/lambda-context.ts";
import { toRecord } from "../../local/sqs-poller.ts";
import { type FlushingRecorder, metricRecorder } from "../../shared/adapters/metrics/recorder.ts";
import { logger } from "../../shared/logger.ts";
import { sqsWorker } from "../../shared/workers/sqs-batch.ts";

/** Stdout's JSON lines while `run` runs (the logger's and the EMF lines); other output goes on. */
async function jsonLines(run: () => Promise<void>): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  const write = process.stdout.write.bind(process.stdout);
  vi.spyOn(process.stdout, "write").mockImplementation((chunk, ...rest) => {
    const text = String(chunk);
    if (!text.startsWith("{")) return write(chunk, ...(rest as []));
    for (const line of text.trim().split("\n")) lines.push(JSON.parse(line));
    return true;
  });
  await run();
  return lines;
}

/** The figures go nowhere: these handlers record none. */
const noFigures: FlushingRecorder = {
  record: () => {},
  flush: async () => {},
  invocationEnded: async () => {},
  close: async () => {},
};

const record = (id: string): SQSRecord =>
  toRecord({ MessageId: id, ReceiptHandle: id, Body: JSON.stringify({ id }) }, { queueArn: "arn:probe" });

/** Every pending promise callback has run: the next turn of the event loop (not a timed wait). */
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

afterEach(() => {
  vi.restoreAllMocks();
});

it("a batch's failed record is reported even when another invocation of the worker starts meanwhile", async () => {
  const slow = Promise.withResolvers<void>();
  const handler = sqsWorker(
    "probe",
    z.object({ id: z.string() }),
    async (m) => {
      if (m.id === "a-fails") throw new Error("the first record fails");
      if (m.id === "a-slow") await slow.promise;
      return "done";
    },
    { metrics: noFigures },
  );
  const invoke = (records: SQSRecord[]) =>
    invokeLocally("probe", 60_000, (context) =>
      handler({ Records: records } as SQSEvent, context),
    ) as Promise<SQSBatchResponse>;

  const first = invoke([record("a-fails"), record("a-slow")]);
  await nextTurn(); // the first record has failed; the second still runs
  const second = await invoke([record("b-ok")]);
  slow.resolve();

  // Without an invocation's own state, the second one's start wiped the first one's failure: the
  // poller would have deleted a message that failed.
  expect((await first).batchItemFailures).toEqual([{ itemIdentifier: "a-fails" }]);
  expect(second.batchItemFailures).toEqual([]);
});

it("a log line carries its own invocation's function and keys, not another's running at once", async () => {
  const apiWaits = Promise.withResolvers<void>();
  const apiHandler = sqsWorker(
    "api-like",
    z.object({ id: z.string() }),
    async () => {
      // What the API does for each request (shared/http/api.ts).
      logger.appendKeys({ route: "GET /v1/pools/{poolId}", tenantId: "ten-a" });
      await apiWaits.promise;
      return "answered";
    },
    { metrics: noFigures },
  );
  const workerHandler = sqsWorker("worker", z.object({ id: z.string() }), async () => "worked", {
    metrics: noFigures,
  });

  const lines = await jsonLines(async () => {
    const api = invokeLocally("pristine-api", 60_000, (context) =>
      apiHandler({ Records: [record("m-api")] } as SQSEvent, context),
    );
    await nextTurn(); // the API's keys are appended; its request still runs
    await invokeLocally("pristine-replication", 60_000, (context) =>
      workerHandler({ Records: [record("m-worker")] } as SQSEvent, context),
    );
    apiWaits.resolve();
    await api;
  });

  const worker = lines.find((l) => l.message === "worker: worked");
  const answered = lines.find((l) => l.message === "api-like: answered");
  expect(worker).toMatchObject({ function_name: "pristine-replication", messageId: "m-worker" });
  expect(worker).not.toHaveProperty("route");
  expect(worker).not.toHaveProperty("tenantId");
  expect(answered).toMatchObject({
    function_name: "pristine-api",
    route: "GET /v1/pools/{poolId}",
    tenantId: "ten-a",
  });
});

it("a long-lived process's figures recorded in invocations reach its EMF lines at the background flush", async () => {
  const series = { add: async () => {}, setGauge: async () => {}, read: async () => [] };
  // As the host agent's: EMF on, written every so often rather than as an invocation ends.
  const recorder = metricRecorder(series, { serviceName: "probe", flushEveryMs: 3_600_000 });
  const lines = await jsonLines(async () => {
    await invokeLocally("probe", 60_000, async () => recorder.record("ten-a", "logonLatencyMs", 42));
    await invokeLocally("probe", 60_000, async () => recorder.record("ten-a", "logonLatencyMs", 58));
    await recorder.close(); // the last flush, outside any invocation, as the timer's
  });
  const emf = lines.filter((l) => "_aws" in l);
  expect(emf).toHaveLength(1);
  expect(emf[0]).toMatchObject({ service: "probe", logonLatencyMs: [42, 58] });
});
