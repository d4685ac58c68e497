import { Duration } from "aws-cdk-lib";
import type * as apigw from "aws-cdk-lib/aws-apigatewayv2";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cwActions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import {
  isPerPool,
  type MetricName,
  metricCatalogue,
  metricNames,
} from "../../shared/domain/metric-catalogue.ts";
import { alarmTopicName } from "../names.ts";
import { READINESS_PERIOD } from "./events.ts";
import type { PristineFunction } from "./lambda-function.ts";
import type { WorkQueue } from "./queues.ts";

/** The namespace the functions' figures go to (embedded metric format, shared/adapters/metrics). */
const METRIC_NAMESPACE = "Pristine";

/** Oldest-message age that means a queue is not keeping up, per queue kind. */
const OLDEST_MESSAGE_AGE: Readonly<Record<string, Duration>> = {
  // A clone job can legitimately run up to the worker's 15 minute timeout.
  "clone-jobs": Duration.minutes(30),
  // Logoff to refresh should take seconds; minutes mean users wait for desktops.
  logoff: Duration.minutes(5),
  // This is the replication lag: the data loss (RPO) a failover right now would cause.
  replication: Duration.minutes(15),
  // Attach runs at logon and commit at logoff: a user waits for the one, the DR copy for the other.
  "user-data": Duration.minutes(5),
};
const DEFAULT_OLDEST_MESSAGE_AGE = Duration.minutes(30);

export interface ObservabilityProps {
  readonly stage: string;
  readonly functions: readonly PristineFunction[];
  readonly queues: readonly WorkQueue[];
  readonly httpApi: apigw.HttpApi;
  /** Subscribed to the alarm topic when given. */
  readonly alarmEmail: string | undefined;
}

/**
 * Alarms, all published to one SNS topic: any message in a DLQ, a main queue falling behind,
 * and errors or throttles of any function, plus API 5xx responses.
 */
export class Observability extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];
  /** Every figure of the metric catalogue, as the functions publish it (one graph each). */
  readonly dashboard: cloudwatch.Dashboard;
  private readonly stage: string;

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    this.stage = props.stage;

    this.topic = new sns.Topic(this, "AlarmTopic", {
      topicName: alarmTopicName(props.stage),
      displayName: `Pristine ${props.stage} alarms`,
      enforceSSL: true,
    });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));

    for (const workQueue of props.queues) {
      this.alarm(`${workQueue.kind}-dlq-not-empty`, {
        alarmDescription: `Messages in the ${workQueue.kind} dead-letter queue: jobs failed ${workQueue.maxReceiveCount} times or events were undeliverable.`,
        metric: workQueue.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(1),
          statistic: cloudwatch.Stats.MAXIMUM,
        }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      });
      const maxAge = OLDEST_MESSAGE_AGE[workQueue.kind] ?? DEFAULT_OLDEST_MESSAGE_AGE;
      this.alarm(`${workQueue.kind}-oldest-message`, {
        alarmDescription: `The oldest message in the ${workQueue.kind} queue is older than ${maxAge.toHumanString()}.`,
        metric: workQueue.queue.metricApproximateAgeOfOldestMessage({
          period: Duration.minutes(1),
          statistic: cloudwatch.Stats.MAXIMUM,
        }),
        threshold: maxAge.toSeconds(),
        evaluationPeriods: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      });
    }

    for (const fn of props.functions) {
      this.alarm(`${fn.name}-errors`, {
        alarmDescription: `The ${fn.name} function failed (an error, timeout or crash).`,
        metric: fn.fn.metricErrors({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      });
      this.alarm(`${fn.name}-throttles`, {
        alarmDescription: `The ${fn.name} function was throttled (account or function concurrency exhausted).`,
        metric: fn.fn.metricThrottles({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      });
    }

    // DR readiness (docs/dr.md): a check found a user's data, an image version or a pool that DR
    // could not fail over with. The replication worker records it, in DR where it checks and in
    // the primary where the report arrives (Powertools Metrics' service dimension).
    this.alarm("dr-readiness-failures", {
      alarmDescription:
        "A DR readiness check found users' data, image versions or pools in the DR region that do not match the primary (GET /v1/dr/readiness names them).",
      metric: new cloudwatch.Metric({
        namespace: METRIC_NAMESPACE,
        metricName: "readinessFailures" satisfies MetricName,
        dimensionsMap: { service: "pristine-replication-worker" },
        period: READINESS_PERIOD,
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    });

    this.dashboard = new cloudwatch.Dashboard(this, "Dashboard", {
      dashboardName: `pristine-${props.stage}`,
      widgets: [figureWidgets()],
    });

    this.alarm("api-5xx", {
      alarmDescription: "The HTTP API answered with 5xx responses.",
      metric: props.httpApi.metricServerError({
        period: Duration.minutes(5),
        statistic: cloudwatch.Stats.SUM,
      }),
      threshold: 5,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    });
  }

  private alarm(
    name: string,
    props: Omit<cloudwatch.AlarmProps, "alarmName" | "evaluationPeriods"> & { evaluationPeriods?: number },
  ): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, name, {
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      ...props,
      alarmName: `pristine-${this.stage}-${name}`,
    });
    alarm.addAlarmAction(new cwActions.SnsAction(this.topic));
    alarm.addOkAction(new cwActions.SnsAction(this.topic));
    this.alarms.push(alarm);
    return alarm;
  }
}

/**
 * One graph per figure of the catalogue, across the functions that publish it (a SEARCH over the
 * service dimension): counts as sums, durations as averages and p99 (per 5 minutes); a per-pool
 * gauge as its average, one line per pool (the poolId dimension).
 */
function figureWidgets(): cloudwatch.IWidget[] {
  return metricNames.map((name) => {
    const perPool = isPerPool(name);
    const count = metricCatalogue[name].unit === "Count" && !perPool;
    const search = (stat: string, label: string) =>
      new cloudwatch.MathExpression({
        expression: `SEARCH('{${METRIC_NAMESPACE},${perPool ? "poolId,service" : "service"}} MetricName="${name}"', '${stat}', 300)`,
        label,
        usingMetrics: {},
        period: Duration.minutes(5),
      });
    return new cloudwatch.GraphWidget({
      title: `${name} (${metricCatalogue[name].unit}): ${metricCatalogue[name].about}`,
      width: 8,
      height: 6,
      left: count
        ? [search("Sum", "sum")]
        : perPool
          ? [search("Average", "average")]
          : [search("Average", "average"), search("p99", "p99")],
    });
  });
}
