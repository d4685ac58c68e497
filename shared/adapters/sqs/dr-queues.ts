import { createHash } from "node:crypto";
import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { ReplicationMessage } from "../../messages/replication.ts";
import { type UserDataJob, userDataGroup, userDataJobKey } from "../../messages/user-data-job.ts";
import type { ReplicationQueue, UserDataJobQueue } from "../../ports/index.ts";
import { sendJson } from "./queue.ts";

interface Waiting {
  job: UserDataJob;
  resolve(): void;
  reject(err: Error): void;
}

/**
 * The user-data FIFO queue. Jobs sent in the same tick (a logon storm) travel together in
 * batches of ten, so a logon pays for a tenth of an SQS call; each caller still waits for its
 * own job to be accepted. Group = (tenant, user); the deduplication id is the job's identity.
 */
export function sqsUserDataJobQueue(sqs: SQSClient, queueUrl: string | undefined): UserDataJobQueue {
  let waiting: Waiting[] = [];

  async function flush() {
    const batch = waiting;
    waiting = [];
    for (let i = 0; i < batch.length; i += 10) {
      const chunk = batch.slice(i, i + 10);
      try {
        if (!queueUrl) throw new Error("PRISTINE_USER_DATA_QUEUE_URL is not configured for this function");
        const out = await sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: chunk.map((w, n) => ({
              Id: String(n),
              MessageBody: JSON.stringify(w.job),
              MessageGroupId: userDataGroup(w.job),
              MessageDeduplicationId: createHash("sha256").update(userDataJobKey(w.job)).digest("hex"),
            })),
          }),
        );
        const failed = new Map((out.Failed ?? []).map((f) => [f.Id, f.Message ?? f.Code]));
        chunk.forEach((w, n) => {
          const why = failed.get(String(n));
          if (why === undefined) w.resolve();
          else w.reject(new Error(`SQS refused a user-data job: ${why}`));
        });
      } catch (err) {
        for (const w of chunk) w.reject(err as Error);
      }
    }
  }

  return {
    send(jobs) {
      if (jobs.length === 0) return Promise.resolve();
      if (waiting.length === 0) setImmediate(() => void flush());
      return Promise.all(
        jobs.map((job) => new Promise<void>((resolve, reject) => waiting.push({ job, resolve, reject }))),
      ).then(() => undefined);
    },
  };
}

export function sqsReplicationQueue(sqs: SQSClient, queueUrl: string | undefined): ReplicationQueue {
  return {
    async send(messages: ReplicationMessage[], opts = {}) {
      if (!queueUrl) throw new Error("PRISTINE_REPLICATION_QUEUE_URL is not configured for this function");
      await sendJson(sqs, queueUrl, messages, opts.delaySeconds);
    },
  };
}
