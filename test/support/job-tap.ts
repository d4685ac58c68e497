/**
 * Delivers a worker's jobs by hand, for tests that decide the order: which job runs, when, and
 * how many times (SQS delivers at least once). The messages are real ones, received from the
 * region's queue; they run through the same handler the worker runs, as a batch of one.
 */
import { DeleteMessageCommand, type Message, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { invokeLocally } from "../../local/lambda-context.ts";
import type { Region, WorkerName } from "../../local/region.ts";
import { toRecord } from "../../local/sqs-poller.ts";

export interface Job {
  message: Message;
  body: any;
}

export function jobTap(region: Region, worker: WorkerName) {
  const spec = region.workers[worker];
  const sqs = region.app.sqs;
  return {
    /** Receives what is waiting (hidden from other consumers for `hideSeconds`). */
    async take(opts: { max?: number; hideSeconds?: number; waitSeconds?: number } = {}): Promise<Job[]> {
      const out = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: spec.queueUrl,
          MaxNumberOfMessages: opts.max ?? 10,
          WaitTimeSeconds: opts.waitSeconds ?? 1,
          VisibilityTimeout: opts.hideSeconds ?? 600,
          MessageSystemAttributeNames: ["All"],
        }),
      );
      return (out.Messages ?? []).map((message) => ({ message, body: JSON.parse(message.Body ?? "{}") }));
    },
    /** Takes until a job matches, or throws after `timeoutMs`; the others are taken too (returned). */
    async takeUntil(match: (body: any) => boolean, timeoutMs = 15_000): Promise<{ job: Job; others: Job[] }> {
      const others: Job[] = [];
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        for (const job of await this.take())
          if (match(job.body)) return { job, others };
          else others.push(job);
      }
      throw new Error(`no matching ${worker} job within ${timeoutMs} ms (took ${others.length} others)`);
    },
    /** Runs one delivery of a job; answers whether the handler reported it failed. */
    async run(job: Job): Promise<"done" | "failed"> {
      const out = await invokeLocally(spec.functionName, 60_000, (context) =>
        spec.handler({ Records: [toRecord(job.message, spec)] }, context),
      );
      return (out?.batchItemFailures ?? []).length > 0 ? "failed" : "done";
    },
    async ack(job: Job): Promise<void> {
      await sqs.send(
        new DeleteMessageCommand({ QueueUrl: spec.queueUrl, ReceiptHandle: job.message.ReceiptHandle }),
      );
    },
    /** Runs and acknowledges everything waiting, until the queue stays empty for a receive. */
    async drain(limit = 100): Promise<number> {
      let ran = 0;
      for (let jobs = await this.take(); jobs.length > 0 && ran < limit; jobs = await this.take()) {
        for (const job of jobs) {
          if ((await this.run(job)) === "done") await this.ack(job);
          ran++;
        }
      }
      return ran;
    },
  };
}
