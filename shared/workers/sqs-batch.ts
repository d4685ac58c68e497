import {
  BatchProcessor,
  EventType,
  processPartialResponse,
  SqsFifoPartialProcessorAsync,
} from "@aws-lambda-powertools/batch";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import type { z } from "zod";
import { logger } from "../logger.ts";

/**
 * An SQS-triggered worker with Lambda's partial batch semantics: each record is parsed with the
 * message type's schema and handled on its own; failures are reported as batchItemFailures so only
 * they are redelivered (and reach the DLQ after maxReceiveCount).
 */
export function sqsWorker<S extends z.ZodType>(
  name: string,
  schema: S,
  handle: (message: z.infer<S>, record: SQSRecord) => Promise<string>,
  /** FIFO queue: a failure fails the rest of its message group in the batch, keeping the order. */
  fifo = false,
) {
  const processor = new BatchProcessor(EventType.SQS);
  const fifoProcessor = new SqsFifoPartialProcessorAsync();
  const recordHandler = async (record: SQSRecord) => {
    const parsed = schema.safeParse(JSON.parse(record.body));
    if (!parsed.success) {
      // Will never succeed; failing it sends it to the DLQ where an operator can see it.
      logger.error(`${name}: malformed message`, {
        messageId: record.messageId,
        issues: parsed.error.issues,
      });
      throw new Error(`malformed ${name} message ${record.messageId}`);
    }
    try {
      const outcome = await handle(parsed.data, record);
      logger.info(`${name}: ${outcome}`, { messageId: record.messageId });
    } catch (err) {
      logger.warn(`${name}: will retry`, {
        messageId: record.messageId,
        receiveCount: record.attributes.ApproximateReceiveCount,
        error: (err as Error).message,
      });
      throw err;
    }
  };
  return (event: SQSEvent, context: Context): Promise<SQSBatchResponse> =>
    fifo
      ? processPartialResponse(event, recordHandler, fifoProcessor, { context, skipGroupOnError: true })
      : processPartialResponse(event, recordHandler, processor, { context });
}
