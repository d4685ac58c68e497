import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from "@aws-sdk/client-sqs";

export interface QueueRef {
  url: string;
  arn: string;
  dlqUrl: string;
}

async function arnOf(sqs: SQSClient, url: string): Promise<string> {
  const out = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }));
  const arn = out.Attributes?.QueueArn;
  if (!arn) throw new Error(`queue ${url} has no ARN`);
  return arn;
}

/** A queue and its DLQ with a redrive policy, as the CDK stack defines them (idempotent). */
export async function ensureQueueWithDlq(
  sqs: SQSClient,
  name: string,
  opts: { visibilityTimeoutSeconds: number; maxReceiveCount?: number; fifo?: boolean },
): Promise<QueueRef> {
  // A FIFO queue's name ends in .fifo and its DLQ must be FIFO too.
  const fifo = opts.fifo ? { FifoQueue: "true" } : undefined;
  const named = (n: string) => (opts.fifo ? `${n}.fifo` : n);
  const dlq = await sqs.send(
    new CreateQueueCommand({ QueueName: named(`${name}-dlq`), ...(fifo ? { Attributes: fifo } : {}) }),
  );
  if (!dlq.QueueUrl) throw new Error(`could not create ${name}-dlq`);
  const dlqArn = await arnOf(sqs, dlq.QueueUrl);
  const queue = await sqs.send(
    new CreateQueueCommand({
      QueueName: named(name),
      Attributes: {
        ...fifo,
        VisibilityTimeout: String(opts.visibilityTimeoutSeconds),
        RedrivePolicy: JSON.stringify({
          deadLetterTargetArn: dlqArn,
          maxReceiveCount: opts.maxReceiveCount ?? 5,
        }),
      },
    }),
  );
  if (!queue.QueueUrl) throw new Error(`could not create ${name}`);
  return { url: queue.QueueUrl, arn: await arnOf(sqs, queue.QueueUrl), dlqUrl: dlq.QueueUrl };
}
