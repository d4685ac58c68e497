import { Duration } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import { Construct } from "constructs";
import { desktopEventTypes } from "../../shared/messages/session-event.ts";
import type { WorkQueue } from "./queues.ts";

/**
 * The events the desktop agents (through their hosts) put on the default bus: logoff (DESIGN.md
 * section 4), disconnect, reconnect and idle time. One rule routes them all to the logoff queue.
 */
export const DESKTOP_EVENTS = { source: "pristine.desktop", detailTypes: [...desktopEventTypes] } as const;

export const RECONCILER_RATE = Duration.minutes(1);

/** The DR readiness checks' period: one check of every tenant per period (docs/dr.md). */
export const READINESS_PERIOD = Duration.minutes(15);

/** What the functions that start, run or report readiness checks read of their period. */
export const readinessEnvironment = () => ({
  PRISTINE_READINESS_PERIOD_MS: String(READINESS_PERIOD.toMilliseconds()),
});

export interface EventsProps {
  readonly stage: string;
  readonly logoffQueue: WorkQueue;
  readonly reconciler: lambda.IFunction;
}

/** EventBridge: logoff events to the logoff queue, and the reconciler's schedules. */
export class Events extends Construct {
  readonly logoffRule: events.Rule;
  readonly reconcilerSchedule: events.Rule;
  readonly readinessSchedule: events.Rule;

  constructor(scope: Construct, id: string, props: EventsProps) {
    super(scope, id);

    // The construct id stays: renaming it would replace the deployed rule.
    this.logoffRule = new events.Rule(this, "SessionLogoff", {
      description: `pristine-${props.stage}: desktop agents' session events (logoff, disconnect, reconnect, idle) to the logoff queue`,
      eventPattern: { source: [DESKTOP_EVENTS.source], detailType: [...DESKTOP_EVENTS.detailTypes] },
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

    // The same function starts the DR readiness checks (one message per tenant, then it is done).
    // A run repeated by a retry checks the same period again and stores the same report.
    this.readinessSchedule = new events.Rule(this, "ReadinessSchedule", {
      description: `pristine-${props.stage}: start the DR readiness checks every ${READINESS_PERIOD.toHumanString()}`,
      schedule: events.Schedule.rate(READINESS_PERIOD),
    });
    this.readinessSchedule.addTarget(
      new targets.LambdaFunction(props.reconciler, {
        event: events.RuleTargetInput.fromObject({ task: "readiness" }),
        retryAttempts: 2,
        maxEventAge: Duration.minutes(10),
      }),
    );
  }
}
