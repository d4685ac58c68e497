/**
 * Runs an SQS-triggered Lambda handler in-process with the event source mapping's semantics:
 * batches of up to `batchSize`, the queue's visibility timeout, partial batch failure through
 * `batchItemFailures` (only successes are deleted), and the queue's own redrive policy moving a
 * message to its DLQ after maxReceiveCount receives.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { invokeLocally } from "./lambda-context.ts";

export type SqsHandler = (
  event: SQSEvent,
  context: Context,
) => Promise<SQSBatchResponse | undefined | undefined>;

export interface PollerOptions {
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  functionName: string;
  handler: SqsHandler;
  batchSize?: number;
  /**
   * How long a receive waits for a message (default 20 s, as Lambda's pollers). A poll abandoned
   * when its process stops can still be handed a message, which then waits out its visibility
   * timeout: a process that stops and starts again (a host agent) polls briefly.
   */
  waitTimeSeconds?: number;
  /** Parallel pollers: Lambda's concurrency for this mapping. */
  concurrency?: number;
  /**
   * Lambda leaves a failed message invisible for the queue's whole visibility timeout; locally a
   * shorter retry delay keeps the feedback loop quick. Set to undefined to keep Lambda's behaviour.
   */
  retryDelaySeconds?: number;
  /**
   * The function's time limit, as Lambda enforces it: an invocation still running after it counts
   * as failed (its messages come back). Locally the work itself cannot be killed, so it is only
   * reported; tests use it to prove that each delivery of a job stays short.
   */
  timeoutMs?: number;
  /** Fault injection: every batch is handed to the handler twice, at once (a duplicate delivery). */
  duplicateDeliveries?: boolean;
  awsRegion?: string;
}

export interface PollerStats {
  invocations: number;
  timedOut: number;
  longestInvocationMs: number;
}

/** An SQS message as Lambda hands it to a function. */
export function toRecord(m: Message, opts: Pick<PollerOptions, "queueArn" | "awsRegion">): SQSRecord {
  const attrs = m.Attributes ?? {};
  return {
    messageId: m.MessageId ?? "",
    receiptHandle: m.ReceiptHandle ?? "",
    body: m.Body ?? "",
    attributes: {
      ApproximateReceiveCount: attrs.ApproximateReceiveCount ?? "1",
      SentTimestamp: attrs.SentTimestamp ?? String(Date.now()),
      SenderId: attrs.SenderId ?? "local",
      ApproximateFirstReceiveTimestamp: attrs.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: m.MD5OfBody ?? "",
    eventSource: "aws:sqs",
    eventSourceARN: opts.queueArn,
    awsRegion: opts.awsRegion ?? "us-east-1",
  };
}

export interface Poller {
  functionName: string;
  stats(): PollerStats;
  stop(): Promise<void>;
}

export function startSqsPoller(opts: PollerOptions): Poller {
  let running = true;
  const timeoutMs = opts.timeoutMs ?? 15 * 60_000;
  const stats: PollerStats = { invocations: 0, timedOut: 0, longestInvocationMs: 0 };
  const abort = new AbortController();
  const batchSize = opts.batchSize ?? 10;

  async function loop() {
    while (running) {
      let messages: Message[] = [];
      try {
        const out = await opts.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: opts.queueUrl,
            MaxNumberOfMessages: batchSize,
            // Long polls, as Lambda's pollers make them: an idle poller costs no CPU (with dozens of
            // them, one-second polls were a steady load on the process and the emulator).
            WaitTimeSeconds: opts.waitTimeSeconds ?? 20,
            MessageSystemAttributeNames: ["All"],
          }),
          { abortSignal: abort.signal },
        );
        messages = out.Messages ?? [];
      } catch (err) {
        if (!running) return;
        console.error(`[${opts.functionName}] receive failed: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (messages.length === 0) continue;
      const records = messages.map((m) => toRecord(m, opts));
      let failedIds: Set<string>;
      try {
        const started = Date.now();
        const invoke = () =>
          invokeLocally(opts.functionName, timeoutMs, (context) =>
            opts.handler({ Records: records }, context),
          );
        // A duplicate delivery fails the batch's records if either copy reports them failed.
        const invocation = opts.duplicateDeliveries
          ? Promise.all([invoke(), invoke()]).then(([a, b]) => ({
              batchItemFailures: [...(a?.batchItemFailures ?? []), ...(b?.batchItemFailures ?? [])],
            }))
          : invoke();
        let timer: NodeJS.Timeout | undefined;
        const limit = new Promise<"timed-out">((resolve) => {
          timer = setTimeout(() => resolve("timed-out"), timeoutMs);
        });
        const response = await Promise.race([invocation, limit]).finally(() => clearTimeout(timer));
        const took = Date.now() - started;
        stats.invocations++;
        stats.longestInvocationMs = Math.max(stats.longestInvocationMs, took);
        if (response === "timed-out") {
          stats.timedOut++;
          invocation.catch(() => undefined);
          throw new Error(`Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`);
        }
        failedIds = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
      } catch (err) {
        console.error(`[${opts.functionName}] invocation failed: ${(err as Error).message}`);
        failedIds = new Set(records.map((r) => r.messageId));
      }
      const done = records.filter((r) => !failedIds.has(r.messageId));
      const failed = records.filter((r) => failedIds.has(r.messageId));
      try {
        if (done.length > 0) {
          await opts.sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: opts.queueUrl,
              Entries: done.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })),
            }),
          );
        }
        if (failed.length > 0 && opts.retryDelaySeconds !== undefined) {
          await opts.sqs.send(
            new ChangeMessageVisibilityBatchCommand({
              QueueUrl: opts.queueUrl,
              Entries: failed.map((r, i) => ({
                Id: String(i),
                ReceiptHandle: r.receiptHandle,
                VisibilityTimeout: opts.retryDelaySeconds ?? 0,
              })),
            }),
          );
        }
      } catch (err) {
        // The messages come back after their visibility timeout; handlers are idempotent.
        console.error(`[${opts.functionName}] ack failed: ${(err as Error).message}`);
      }
    }
  }

  const loops = Array.from({ length: opts.concurrency ?? 2 }, () => loop());
  return {
    functionName: opts.functionName,
    stats: () => ({ ...stats }),
    async stop() {
      running = false;
      abort.abort();
      await Promise.allSettled(loops);
    },
  };
}
