import { Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import { AccessLogFormat } from "aws-cdk-lib/aws-apigateway";
import * as apigw from "aws-cdk-lib/aws-apigatewayv2";
import { HttpLambdaAuthorizer, HttpLambdaResponseType } from "aws-cdk-lib/aws-apigatewayv2-authorizers";
import { HttpLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { routes } from "../../shared/http/routes.ts";
import type { ApiSettings, DatastoreSettings } from "../config.ts";
import { type RegionRole, regionName } from "../names.ts";
import { grantTableRead, grantTableReadWrite } from "./data.ts";
import {
  DATASTORE_MOUNT_PATH,
  datastoreEnvironment,
  type EfsDatastore,
  USER_DATA_MOUNT_PATH,
} from "./datastore.ts";
import { readinessEnvironment } from "./events.ts";
import { PristineFunction } from "./lambda-function.ts";
import type { PeerRegion } from "./peer.ts";
import { grantSend, type Queues } from "./queues.ts";

/** Authorizer decisions are cached per Authorization header value for this long. */
export const AUTHORIZER_CACHE_TTL = Duration.minutes(5);

export interface ApiProps {
  readonly stage: string;
  readonly role: RegionRole;
  /** The concrete region of the stack: PRISTINE_REGION_NAME (names.ts regionName). */
  readonly region: string;
  readonly peer: PeerRegion;
  readonly table: dynamodb.Table;
  readonly queues: Queues;
  readonly operatorKeySha256: string;
  /** The region's EFS datastore as the control plane knows it (pristine:datastore). */
  readonly datastoreSettings: DatastoreSettings;
  readonly settings: ApiSettings;
  /**
   * The api reads the datastore too: publish validates source disks, desktop listings show delta
   * sizes, session reads look at the user-data store.
   */
  readonly datastore: EfsDatastore;
  readonly qemuImgLayer: lambda.ILayerVersion | undefined;
}

/**
 * The HTTP API: every /v1 route goes through a Lambda authorizer (tenant API keys and the
 * operator key, simple responses, cached) into the api function; GET /health and the web console's
 * static files (GET /console/...) are open.
 */
export class Api extends Construct {
  readonly httpApi: apigw.HttpApi;
  readonly stage: apigw.HttpStage;
  readonly handler: PristineFunction;
  readonly authorizer: PristineFunction;
  readonly accessLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    const { queues, table } = props;

    this.authorizer = new PristineFunction(this, "Authorizer", {
      name: "authorizer",
      stage: props.stage,
      environment: {
        PRISTINE_TABLE_NAME: table.tableName,
        PRISTINE_OPERATOR_KEY_SHA256: props.operatorKeySha256,
      },
    });
    grantTableRead(table, this.authorizer.role);

    this.handler = new PristineFunction(this, "Handler", {
      name: "api",
      stage: props.stage,
      environment: {
        PRISTINE_TABLE_NAME: table.tableName,
        ...queues.cloneJobsEnvironment(),
        // Logon attaches and logoff commits the user's data; drills, failover and failback, and
        // configuration changes go to the replication worker (the latter only when a peer exists).
        PRISTINE_USER_DATA_QUEUE_URL: queues.byKind["user-data"].queue.queueUrl,
        PRISTINE_REPLICATION_QUEUE_URL: queues.byKind.replication.queue.queueUrl,
        PRISTINE_REGION_NAME: regionName(props.region),
        ...props.peer.environment(),
        // The handler authenticates each request itself too (defence in depth behind the authorizer).
        PRISTINE_OPERATOR_KEY_SHA256: props.operatorKeySha256,
        // Datastore new pools are placed on.
        ...datastoreEnvironment(props.datastoreSettings),
        PRISTINE_DATA_DIR: DATASTORE_MOUNT_PATH,
        PRISTINE_DATASTORE_PATH: DATASTORE_MOUNT_PATH,
        PRISTINE_IMPORT_ROOTS: `${DATASTORE_MOUNT_PATH}/imports`,
        PRISTINE_USER_DATA_PATH: USER_DATA_MOUNT_PATH,
        // GET /v1/dr/readiness tells the period, and whether the last check is overdue.
        ...readinessEnvironment(),
      },
      vpc: props.datastore.vpc,
      vpcSubnets: props.datastore.subnets,
      securityGroups: [props.datastore.clientSecurityGroup],
      filesystem: props.datastore.lambdaFileSystem(),
      layers: props.qemuImgLayer ? [props.qemuImgLayer] : undefined,
    });
    grantTableReadWrite(table, this.handler.role);
    props.peer.grantFence(this.handler.role);
    queues.grantSendCloneJobs(this.handler.fn);
    grantSend(queues.byKind.replication.queue, this.handler.role);
    grantSend(queues.byKind["user-data"].queue, this.handler.role);

    const authorizer = new HttpLambdaAuthorizer("ApiKeyAuthorizer", this.authorizer.fn, {
      authorizerName: "api-key",
      identitySource: ["$request.header.Authorization"],
      responseTypes: [HttpLambdaResponseType.SIMPLE],
      resultsCacheTtl: AUTHORIZER_CACHE_TTL,
    });
    const integration = new HttpLambdaIntegration("ApiIntegration", this.handler.fn, {
      payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
      // One permission for the whole API instead of one per route (the function policy stays small).
      scopePermissionToRoute: false,
    });

    this.httpApi = new apigw.HttpApi(this, "HttpApi", {
      apiName: `pristine-${props.stage}`,
      description: `Pristine control plane API (${props.stage}, ${props.role} region)`,
      createDefaultStage: false,
    });

    this.accessLogs = new logs.LogGroup(this, "AccessLogs", {
      retention: logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.stage = new apigw.HttpStage(this, "DefaultStage", {
      httpApi: this.httpApi,
      stageName: "$default",
      autoDeploy: true,
      throttle: { rateLimit: props.settings.rateLimit, burstLimit: props.settings.burstLimit },
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(this.accessLogs),
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: "$context.requestId",
            ip: "$context.identity.sourceIp",
            requestTime: "$context.requestTime",
            method: "$context.httpMethod",
            path: "$context.path",
            routeKey: "$context.routeKey",
            status: "$context.status",
            protocol: "$context.protocol",
            responseLength: "$context.responseLength",
            responseLatency: "$context.responseLatency",
            integrationLatency: "$context.integrationLatency",
            integrationError: "$context.integrationErrorMessage",
            authorizerError: "$context.authorizer.error",
          }),
        ),
      },
    });

    // Every v1 route of DESIGN.md section 4 goes through one authorized proxy route: the handler
    // routes on method and rawPath itself (shared/http/router.ts), so the two cannot drift.
    this.httpApi.addRoutes({
      path: "/v1/{proxy+}",
      methods: [apigw.HttpMethod.ANY],
      integration,
      authorizer,
    });

    // The route table's public routes (health, the API document, the web console's static files,
    // which hold no data) answer without a key; their exact paths win over the proxy route.
    for (const route of routes.filter((r) => r.access === "public")) {
      for (const added of this.httpApi.addRoutes({
        path: route.path,
        methods: [route.method as apigw.HttpMethod],
        integration,
      })) {
        Validations.of(added).acknowledge({
          id: "AwsSolutions-APIG4",
          reason:
            `${route.method} ${route.path} is public by design (${route.summary}); it returns no tenant ` +
            "data. Every other /v1 route uses the API key authorizer.",
        });
      }
    }
  }

  /** The invoke URL of the $default stage. */
  get url(): string {
    return this.stage.url;
  }
}
