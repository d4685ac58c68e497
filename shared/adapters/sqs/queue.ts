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

/**
 * Clone and power jobs. A job about a datastore whose host runs its desktops goes to that host's
 * queue (`routes`, from PRISTINE_DATASTORE_QUEUE_URLS); every other job to the clone-jobs queue.
 */
export function sqsJobQueue(
  sqs: SQSClient,
  queueUrl: string | undefined,
  routes: Record<string, string> = {},
): JobQueue {
  return {
    send: async (jobs: CloneJob[], opts = {}) => {
      const byQueue = new Map<string, CloneJob[]>();
      for (const job of jobs) {
        const routed = "datastoreId" in job && job.datastoreId ? routes[job.datastoreId] : undefined;
        const url = routed ?? queueUrl;
        if (!url) throw new Error("PRISTINE_CLONE_JOBS_QUEUE_URL is not configured for this function");
        byQueue.set(url, [...(byQueue.get(url) ?? []), job]);
      }
      await Promise.all([...byQueue].map(([url, group]) => sendJson(sqs, url, group, opts.delaySeconds)));
    },
  };
}
