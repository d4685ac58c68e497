import {
  BatchProcessor,
  EventType,
  processPartialResponse,
  SqsFifoPartialProcessorAsync,
} from "@aws-lambda-powertools/batch";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import type { z } from "zod";
import { type FlushingRecorder, flushMetrics } from "../adapters/metrics/recorder.ts";
import { DomainError, RetryLater } from "../domain/errors.ts";
import { logger } from "../logger.ts";

/** The ids a log line about a message carries, when the message has them. */
const idFields = [
  "kind",
  "tenantId",
  "poolId",
  "desktopId",
  "sessionId",
  "userId",
  "imageId",
  "drillId",
  "version",
];

function idsOf(message: unknown): Record<string, unknown> {
  const ids: Record<string, unknown> = {};
  const m = message as Record<string, unknown> & { detail?: Record<string, unknown> };
  for (const source of [m, m?.detail])
    for (const k of idFields)
      if (source && source[k] !== undefined && typeof source[k] !== "object") ids[k] = source[k];
  return ids;
}

/**
 * An SQS-triggered worker with Lambda's partial batch semantics: each record is parsed with the
 * message type's schema and handled on its own; failures are reported as batchItemFailures so only
 * they are redelivered (and reach the DLQ after maxReceiveCount).
 *
 * How a job ends: a result string is success; `RetryLater` is "not yet" (redelivered, logged
 * quietly); a `DomainError` is a refusal that will not change on retry (logged as an error and
 * acknowledged), unless it carries a Retry-After; any other error is a fault (redelivered, logged
 * as a warning, and dead-lettered if it persists).
 */
export function sqsWorker<S extends z.ZodType>(
  name: string,
  schema: S,
  handle: (message: z.infer<S>, record: SQSRecord) => Promise<string>,
  opts: {
    /** FIFO queue: a failure fails the rest of its message group in the batch, keeping the order. */
    fifo?: boolean;
    /** The function's figures, written before each batch's invocation ends. */
    metrics: FlushingRecorder;
  },
) {
  const fifo = opts.fifo ?? false;
  const recordHandler = async (record: SQSRecord) => {
    const attempt = record.attributes.ApproximateReceiveCount;
    const parsed = schema.safeParse(JSON.parse(record.body));
    if (!parsed.success) {
      // Will never succeed; failing it sends it to the DLQ where an operator can see it.
      logger.error(`${name}: malformed message`, {
        messageId: record.messageId,
        issues: parsed.error.issues,
      });
      throw new Error(`malformed ${name} message ${record.messageId}`);
    }
    const ids = { messageId: record.messageId, ...idsOf(parsed.data) };
    try {
      const outcome = await handle(parsed.data, record);
      logger.info(`${name}: ${outcome}`, ids);
    } catch (err) {
      if (err instanceof DomainError && err.retryAfterSeconds === undefined) {
        logger.error(`${name}: refused, not retried: ${err.message}`, { ...ids, problem: err.problem });
        return;
      }
      if (err instanceof RetryLater || err instanceof DomainError)
        logger.info(`${name}: not yet: ${err.message}`, { ...ids, attempt });
      else logger.warn(`${name}: will retry`, { ...ids, attempt, error: (err as Error).message });
      throw err;
    }
  };
  return (
    middy<SQSEvent, SQSBatchResponse>()
      .use(injectLambdaContext(logger, { resetKeys: true }))
      .use(flushMetrics(opts.metrics))
      // A processor per invocation: its records and failures are the invocation's own even where
      // one process runs several at once (the local runtime), and none is made outside one.
      .handler((event: SQSEvent, context: Context) =>
        fifo
          ? processPartialResponse(event, recordHandler, new SqsFifoPartialProcessorAsync(), {
              context,
              skipGroupOnError: true,
            })
          : processPartialResponse(event, recordHandler, new BatchProcessor(EventType.SQS), { context }),
      )
  );
}
