import path from "node:path";
import { fileURLToPath } from "node:url";
import { Duration, RemovalPolicy, Size, Validations } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat, SourceMapMode } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import type { FunctionName } from "../names.ts";
import { consoleBundlingHooks } from "./console-assets.ts";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** `functions/<name>/handler.ts`, each exporting `handler`. */
export function entryOf(name: FunctionName): string {
  return path.join(REPO_ROOT, "functions", name, "handler.ts");
}

/**
 * Timeouts live here, in one table, because the queues derive their visibility timeouts from
 * them (6x the consumer's timeout, as AWS recommends for SQS event sources).
 */
export const FUNCTION_TIMEOUTS: Readonly<Record<FunctionName, Duration>> = {
  // HTTP API integrations time out at 30 s; stay below it.
  api: Duration.seconds(25),
  authorizer: Duration.seconds(5),
  // Creating a replica copies a whole image version from S3 onto the datastore.
  "clone-worker": Duration.minutes(15),
  logoff: Duration.seconds(30),
  // Runs every minute; a run that takes longer overlaps the next one (both are idempotent).
  reconciler: Duration.seconds(60),
  // Ships a session's user-data delta to the peer region; applies the peer's; runs a drill.
  "replication-worker": Duration.minutes(15),
  // Attach (qemu-img create), commit (qemu-img commit and a checksum of the disk) or discard of
  // one user's data; 6x this is the user-data queue's visibility timeout (15 minutes, as locally).
  "user-data-worker": Duration.seconds(150),
};

const MEMORY_MIB: Readonly<Record<FunctionName, number>> = {
  api: 512,
  authorizer: 256,
  "clone-worker": 1024,
  logoff: 512,
  reconciler: 512,
  "replication-worker": 1024,
  "user-data-worker": 1024,
};

const DESCRIPTIONS: Readonly<Record<FunctionName, string>> = {
  api: "Pristine API (HTTP API v2 handler)",
  authorizer: "Pristine API key authorizer (tenant keys and the operator key)",
  "clone-worker": "Pristine clone worker (clone-jobs queue consumer, EFS datastore)",
  logoff: "Pristine logoff handler (logoff queue consumer)",
  reconciler: "Pristine reconciler (pool sizing, stuck desktops, orphans; scheduled)",
  "replication-worker": "Pristine replication worker (ships to and applies from the peer region; DR drills)",
  "user-data-worker": "Pristine user-data worker (user-data FIFO queue consumer, EFS user-data store)",
};

export interface PristineFunctionProps {
  readonly name: FunctionName;
  readonly stage: string;
  /** Exactly the variables this function reads; POWERTOOLS_SERVICE_NAME and NODE_OPTIONS are added. */
  readonly environment: Readonly<Record<string, string>>;
  readonly vpc?: ec2.IVpc;
  readonly vpcSubnets?: ec2.SubnetSelection;
  readonly securityGroups?: ec2.ISecurityGroup[];
  readonly filesystem?: lambda.FileSystem;
  readonly layers?: lambda.ILayerVersion[];
  /** The function's /tmp (Lambda's default: 512 MiB). */
  readonly ephemeralStorageMiB?: number;
}

/**
 * One Lambda entry point: a NodejsFunction (esbuild, ESM, source maps, Node 24, arm64) with its
 * own execution role and log group. The role starts with nothing but the right to write to the
 * function's own log group: no AWS managed policy, so every other permission is a grant on a
 * named resource made by the construct that wires the function up.
 */
export class PristineFunction extends Construct {
  readonly name: FunctionName;
  readonly fn: NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
  readonly timeout: Duration;

  constructor(scope: Construct, id: string, props: PristineFunctionProps) {
    super(scope, id);
    this.name = props.name;
    this.timeout = FUNCTION_TIMEOUTS[props.name];

    this.logGroup = new logs.LogGroup(this, "Logs", {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: `Execution role of the pristine-${props.stage} ${props.name} function`,
    });
    this.logGroup.grantWrite(this.role);

    if (props.vpc) {
      // What AWSLambdaVPCAccessExecutionRole grants, minus its logs:* on every log group.
      this.role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: "LambdaVpcNetworkInterfaces",
          actions: [
            "ec2:CreateNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSubnets",
            "ec2:DeleteNetworkInterface",
            "ec2:AssignPrivateIpAddresses",
            "ec2:UnassignPrivateIpAddresses",
          ],
          resources: ["*"],
        }),
      );
      Validations.of(this.role).acknowledge({
        id: "AwsSolutions-IAM5[Resource::*]",
        reason:
          "Two statements use Resource *. (1) Lambda attaches the function to its VPC through ENIs it " +
          "creates with the execution role; ec2:Describe* has no resource-level permissions and the ENI " +
          "ids are not known in advance (https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html" +
          "#configuration-vpc-permissions). (2) elasticfilesystem:ClientMount, added by " +
          "lambda.FileSystem.fromEfsAccessPoint, is conditioned on the datastore's access point ARN.",
      });
    }

    this.fn = new NodejsFunction(this, "Function", {
      entry: entryOf(props.name),
      handler: "handler",
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, "package-lock.json"),
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      description: DESCRIPTIONS[props.name],
      timeout: this.timeout,
      memorySize: MEMORY_MIB[props.name],
      ...(props.ephemeralStorageMiB
        ? { ephemeralStorageSize: Size.mebibytes(props.ephemeralStorageMiB) }
        : {}),
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environment: {
        ...props.environment,
        POWERTOOLS_SERVICE_NAME: `pristine-${props.name}`,
        NODE_OPTIONS: "--enable-source-maps",
      },
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets,
      securityGroups: props.securityGroups,
      filesystem: props.filesystem,
      layers: props.layers,
      bundling: {
        format: OutputFormat.ESM,
        target: "node24",
        mainFields: ["module", "main"],
        minify: true,
        sourceMap: true,
        sourceMapMode: SourceMapMode.DEFAULT,
        sourcesContent: false,
        // Bundle the SDK version the tests ran against instead of the runtime's copy.
        bundleAwsSDK: true,
        tsconfig: path.join(REPO_ROOT, "tsconfig.json"),
        // CommonJS dependencies bundled into an ES module still call require().
        banner:
          "import { createRequire as __pristineCreateRequire } from 'node:module'; " +
          "const require = __pristineCreateRequire(import.meta.url);",
        // The api function also serves the web console (GET /console/): its files go beside the handler.
        ...(props.name === "api" ? { commandHooks: consoleBundlingHooks } : {}),
      },
    });
  }
}
