import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { CloneJob } from "../../messages/clone-job.ts";
import type { JobQueue } from "../../ports/index.ts";

export function sqsClient(endpoint?: string, region?: string): SQSClient {
  return new SQSClient({ ...(endpoint ? { endpoint } : {}), ...(region ? { region } : {}) });
}

/** Sends JSON messages in batches of ten; any entry SQS refuses fails the whole call (the caller retries). */
export async function sendJson(
  sqs: SQSClient,
  queueUrl: string,
  bodies: unknown[],
  delaySeconds?: number,
): Promise<void> {
  for (let i = 0; i < bodies.length; i += 10) {
    const chunk = bodies.slice(i, i + 10);
    const out = await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: chunk.map((body, n) => ({
          Id: String(n),
          MessageBody: JSON.stringify(body),
          ...(delaySeconds ? { DelaySeconds: delaySeconds } : {}),
        })),
      }),
    );
    if (out.Failed && out.Failed.length > 0) {
      throw new Error(
        `SQS refused ${out.Failed.length} message(s): ${out.Failed.map((f) => f.Message).join("; ")}`,
      );
    }
  }
}

export function sqsJobQueue(sqs: SQSClient, queueUrl: string | undefined): JobQueue {
  return {
    send: async (jobs: CloneJob[], opts = {}) => {
      if (!queueUrl) throw new Error("PRISTINE_CLONE_JOBS_QUEUE_URL is not configured for this function");
      await sendJson(sqs, queueUrl, jobs, opts.delaySeconds);
    },
  };
}
