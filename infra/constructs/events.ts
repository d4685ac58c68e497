import { Duration } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import { Construct } from "constructs";
import type { WorkQueue } from "./queues.ts";

/** The logoff event the desktop agents put on the default bus (DESIGN.md section 4). */
export const LOGOFF_EVENT = { source: "pristine.desktop", detailType: "Session Logoff" } as const;

export const RECONCILER_RATE = Duration.minutes(1);

export interface EventsProps {
  readonly stage: string;
  readonly logoffQueue: WorkQueue;
  readonly reconciler: lambda.IFunction;
}

/** EventBridge: logoff events to the logoff queue, and the reconciler's schedule. */
export class Events extends Construct {
  readonly logoffRule: events.Rule;
  readonly reconcilerSchedule: events.Rule;

  constructor(scope: Construct, id: string, props: EventsProps) {
    super(scope, id);

    this.logoffRule = new events.Rule(this, "SessionLogoff", {
      description: `pristine-${props.stage}: desktop agents' Session Logoff events to the logoff queue`,
      eventPattern: { source: [LOGOFF_EVENT.source], detailType: [LOGOFF_EVENT.detailType] },
    });
    // The target adds the queue policy that lets this rule (and only it) send to the queue.
    // Events EventBridge cannot deliver land in the logoff DLQ, whose depth is alarmed.
    this.logoffRule.addTarget(
      new targets.SqsQueue(props.logoffQueue.queue, {
        deadLetterQueue: props.logoffQueue.deadLetterQueue,
        retryAttempts: 185,
        maxEventAge: Duration.hours(24),
      }),
    );

    this.reconcilerSchedule = new events.Rule(this, "ReconcilerSchedule", {
      description: `pristine-${props.stage}: run the reconciler every minute`,
      schedule: events.Schedule.rate(RECONCILER_RATE),
    });
    // A missed run is not retried: the next one is at most a minute away and does the same work.
    this.reconcilerSchedule.addTarget(
      new targets.LambdaFunction(props.reconciler, { retryAttempts: 0, maxEventAge: Duration.minutes(1) }),
    );
  }
}
