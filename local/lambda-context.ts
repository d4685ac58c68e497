import { randomUUID } from "node:crypto";
import { InvokeStore, InvokeStoreBase } from "@aws/lambda-invoke-store";
import type { Context } from "aws-lambda";

/**
 * The local runtime runs many invocations of a function at once in one process (the pollers'
 * concurrency, the API server's requests), which Lambda does only for a function with several
 * invocations per execution environment: it then sets AWS_LAMBDA_MAX_CONCURRENCY and runs each
 * invocation in its own InvokeStore context, where Powertools keeps a batch's state and the
 * logger's keys. Without them, one invocation's start wiped another's failed records (the poller
 * then deleted messages that had failed) and log lines carried another request's keys.
 */
process.env.AWS_LAMBDA_MAX_CONCURRENCY ||= "100";
// Before any AWS SDK request: the SDK installs a single-context store on its first one otherwise.
const store = await InvokeStore.getInstanceAsync(true);
store.run({}, () => undefined);
if (store.hasContext()) {
  throw new Error(
    "the InvokeStore keeps one context for all invocations (an AWS SDK request came before local/lambda-context.ts was imported)",
  );
}

/** The context Lambda hands a function, for the local runtime's invocations of the same handlers. */
function lambdaContext(functionName: string, timeoutMs: number): Context {
  const started = Date.now();
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: "1024",
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: "local",
    getRemainingTimeInMillis: () => Math.max(0, timeoutMs - (Date.now() - started)),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/** One invocation of a function's handler, in a context of its own, as Lambda makes it. */
export function invokeLocally<T>(
  functionName: string,
  timeoutMs: number,
  invoke: (context: Context) => Promise<T>,
): Promise<T> {
  const context = lambdaContext(functionName, timeoutMs);
  return store.run({ [InvokeStoreBase.PROTECTED_KEYS.REQUEST_ID]: context.awsRequestId }, () =>
    invoke(context),
  );
}
