import { readFileSync } from "node:fs";
import path from "node:path";
import { App, Stack, Validations } from "aws-cdk-lib";
import { Match, type Template } from "aws-cdk-lib/assertions";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { AwsSolutionsChecks } from "cdk-nag";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPERATOR_KEY_PLACEHOLDER, readConfig } from "../../infra/config.ts";
import { FUNCTION_TIMEOUTS } from "../../infra/constructs/lambda-function.ts";
import { FUNCTION_NAMES, type FunctionName, QUEUE_KINDS, type QueueKind } from "../../infra/names.ts";
import type { PristineStack } from "../../infra/pristine-stack.ts";
import { tableSchema } from "../../shared/adapters/dynamodb/table-schema.ts";
import { loadConfig } from "../../shared/config.ts";
import { isPerPool, metricNames } from "../../shared/domain/metric-catalogue.ts";
import {
  allStatements,
  asArray,
  type Json,
  logicalId,
  plausibleEnvironment,
  removeSynthOutputs,
  resourcesOf,
  roleStatements,
  type Synthesized,
  synthesize,
  tempOutdir,
  violationsOf,
} from "./synth.ts";

// Synthesizes the real app (cdk.json context) once per scenario, with asset bundling skipped
// (esbuild is exercised by `npx cdk synth`), and checks the templates and the cdk-nag report.

afterAll(removeSynthOutputs);

/**
 * The queue a function's SQS statement points at: a queue of the stack, the peer region's
 * replication queue (an ARN built from names), or "?" for anything else.
 */
function queueOfResource(resource: unknown, queueIds: Map<string, string>, peerQueueArn?: Json): string {
  const getAtt = (resource as Json)?.["Fn::GetAtt"];
  if (Array.isArray(getAtt) && getAtt[1] === "Arn") return queueIds.get(getAtt[0]) ?? `?${getAtt[0]}`;
  if (peerQueueArn && JSON.stringify(resource) === JSON.stringify(peerQueueArn)) return PEER_REPLICATION;
  return `?${JSON.stringify(resource)}`;
}

/** The peer region's replication queue, in the replication worker's policy (see queueOfResource). */
const PEER_REPLICATION = "peer-replication";
type QueueAccess = QueueKind | typeof PEER_REPLICATION;

/** Which queues each function may send to and consume from: nothing else. */
const SQS_ACCESS: Record<FunctionName, { send: QueueAccess[]; consume: QueueKind[] }> = {
  api: { send: ["clone-jobs", "replication", "user-data"], consume: [] },
  authorizer: { send: [], consume: [] },
  "clone-worker": { send: ["clone-jobs", "replication", "user-data"], consume: ["clone-jobs"] },
  logoff: { send: ["clone-jobs", "user-data"], consume: ["logoff"] },
  reconciler: { send: ["clone-jobs", "replication", "user-data"], consume: [] },
  "replication-worker": {
    send: ["clone-jobs", "replication", "user-data", PEER_REPLICATION],
    consume: ["replication"],
  },
  "user-data-worker": { send: ["replication"], consume: ["user-data"] },
};

/** What makes shared/config.ts see a peer region (config.dr.peer). */
const PEER = [
  "PRISTINE_PEER_REGION_NAME",
  "PRISTINE_PEER_BUCKET",
  "PRISTINE_PEER_REPLICATION_QUEUE_URL",
  "PRISTINE_PEER_AWS_REGION",
  "PRISTINE_PEER_TABLE_NAME",
];
const DATASTORE = [
  "PRISTINE_DATASTORE_ID",
  "PRISTINE_DATASTORE_CAPACITY_GIB",
  "PRISTINE_DATASTORE_OVERCOMMIT",
];

/** The environment each function gets (beyond POWERTOOLS_SERVICE_NAME and NODE_OPTIONS). */
const ENVIRONMENT: Record<FunctionName, string[]> = {
  api: [
    "PRISTINE_TABLE_NAME",
    "PRISTINE_CLONE_JOBS_QUEUE_URL",
    "PRISTINE_USER_DATA_QUEUE_URL",
    "PRISTINE_REPLICATION_QUEUE_URL",
    "PRISTINE_REGION_NAME",
    ...PEER,
    "PRISTINE_OPERATOR_KEY_SHA256",
    ...DATASTORE,
    "PRISTINE_DATA_DIR",
    "PRISTINE_DATASTORE_PATH",
    "PRISTINE_IMPORT_ROOTS",
    "PRISTINE_USER_DATA_PATH",
    "PRISTINE_READINESS_PERIOD_MS",
  ],
  authorizer: ["PRISTINE_TABLE_NAME", "PRISTINE_OPERATOR_KEY_SHA256"],
  "clone-worker": [
    "PRISTINE_TABLE_NAME",
    "PRISTINE_CLONE_JOBS_QUEUE_URL",
    "PRISTINE_DATA_DIR",
    "PRISTINE_DATASTORE_PATH",
    "PRISTINE_DATASTORE_ID",
    "PRISTINE_IMPORT_ROOTS",
    "PRISTINE_REPLICATION_QUEUE_URL",
    "PRISTINE_USER_DATA_QUEUE_URL",
    ...PEER,
  ],
  logoff: ["PRISTINE_TABLE_NAME", "PRISTINE_CLONE_JOBS_QUEUE_URL", "PRISTINE_USER_DATA_QUEUE_URL"],
  reconciler: [
    "PRISTINE_TABLE_NAME",
    "PRISTINE_CLONE_JOBS_QUEUE_URL",
    "PRISTINE_DATASTORE_ID",
    "PRISTINE_USER_DATA_QUEUE_URL",
    "PRISTINE_REPLICATION_QUEUE_URL",
    "PRISTINE_READINESS_PERIOD_MS",
    "PRISTINE_PEER_REGION_NAME",
    "PRISTINE_PEER_BUCKET",
    "PRISTINE_PEER_REPLICATION_QUEUE_URL",
    "PRISTINE_PEER_AWS_REGION",
    "PRISTINE_PEER_TABLE_NAME",
  ],
  "replication-worker": [
    "PRISTINE_TABLE_NAME",
    "PRISTINE_CLONE_JOBS_QUEUE_URL",
    ...DATASTORE,
    "PRISTINE_REGION_NAME",
    "PRISTINE_DATA_DIR",
    "PRISTINE_DATASTORE_PATH",
    "PRISTINE_USER_DATA_PATH",
    "PRISTINE_USER_DATA_QUEUE_URL",
    "PRISTINE_REPLICATION_QUEUE_URL",
    "PRISTINE_REPLICATION_BUCKET",
    "PRISTINE_READINESS_PERIOD_MS",
    "PRISTINE_TMP_LIMIT_MIB",
    "PRISTINE_UPLOAD_PART_SIZE_MIB",
    ...PEER,
  ],
  "user-data-worker": [
    "PRISTINE_TABLE_NAME",
    "PRISTINE_REGION_NAME",
    "PRISTINE_USER_DATA_PATH",
    "PRISTINE_REPLICATION_QUEUE_URL",
    ...PEER,
  ],
};

/** The functions that mount the EFS datastore (and so run in the VPC). */
const MOUNTS_DATASTORE: FunctionName[] = ["api", "clone-worker", "replication-worker", "user-data-worker"];

describe("the default app (cdk.json context, no account)", () => {
  let synth: Synthesized;
  beforeAll(() => {
    synth = synthesize();
  });

  it("defines a primary and a DR stack that know each other", () => {
    const { primary, dr, config } = synth.pristine;
    expect(primary.stackName).toBe(`Pristine-${config.stage}-${config.primaryRegion}`);
    expect(dr.stackName).toBe(`Pristine-${config.stage}-${config.drRegion}`);
    expect([primary.role, primary.region, primary.peerRegion]).toEqual([
      "primary",
      "eu-west-1",
      "eu-central-1",
    ]);
    expect([dr.role, dr.region, dr.peerRegion]).toEqual(["dr", "eu-central-1", "eu-west-1"]);
    // Offline synth: no account, concrete regions, no context lookups.
    expect(Stack.of(primary).account).toMatch(/\$\{Token/);
    expect(synth.manifest.missing).toBeUndefined();
  });

  it("cdk-nag (AwsSolutions) reports no unacknowledged finding", () => {
    expect(violationsOf(synth.report, "AwsSolutions")).toEqual([]);
    // No construct reported an error either (warnings such as the placeholder key are fine).
    const annotationErrors = violationsOf(synth.report, "Construct Annotations").filter(
      (v) => v.severity === "error",
    );
    expect(annotationErrors).toEqual([]);
  });

  it("every acknowledged finding is written to the template with a reason", () => {
    const allowed = /^(AwsSolutions-(IAM5\[Resource::.+\]|S1|APIG4)|CloudFormation-Validate::F300[23])$/;
    for (const template of synth.templates.values()) {
      const suppressions = Object.values(template.toJSON().Resources as Record<string, Json>).flatMap(
        (r) => (r.Metadata?.cdk_nag?.rules_to_suppress ?? []) as Json[],
      );
      expect(suppressions.length).toBeGreaterThan(0);
      for (const s of suppressions) {
        expect(s.id).toMatch(allowed);
        expect(String(s.reason).length).toBeGreaterThan(40);
      }
    }
  });

  describe.each(["primary", "dr"] as const)("%s stack", (which) => {
    let stack: PristineStack;
    let template: Template;
    let queueIds: Map<string, string>;
    beforeAll(() => {
      stack = synth.pristine[which];
      template = synth.templates.get(stack) as Template;
      queueIds = new Map();
      for (const kind of QUEUE_KINDS) {
        queueIds.set(logicalId(stack, stack.queues.byKind[kind].queue), kind);
        queueIds.set(logicalId(stack, stack.queues.byKind[kind].deadLetterQueue), `${kind}-dlq`);
      }
    });

    it("has a DLQ with redrive on every queue but the DLQs (5 receives; 50 for replication)", () => {
      const queues = resourcesOf(template, "AWS::SQS::Queue");
      const dlqIds = new Set(
        Object.values(queues)
          .map((q) => q.Properties.RedrivePolicy?.deadLetterTargetArn?.["Fn::GetAtt"]?.[0])
          .filter(Boolean),
      );
      const mainIds = Object.keys(queues).filter((id) => !dlqIds.has(id));
      expect(mainIds).toHaveLength(4);
      expect(dlqIds.size).toBe(4);
      for (const id of mainIds) {
        expect(queues[id]?.Properties.RedrivePolicy).toEqual({
          deadLetterTargetArn: { "Fn::GetAtt": [expect.any(String), "Arn"] },
          maxReceiveCount: queueIds.get(id) === "replication" ? 50 : 5,
        });
      }
      for (const id of dlqIds) expect(queues[id]?.Properties.RedrivePolicy).toBeUndefined();
      for (const q of Object.values(queues)) expect(q.Properties.SqsManagedSseEnabled).toBe(true);
    });

    it("enforces TLS on every queue", () => {
      const policies = Object.values(resourcesOf(template, "AWS::SQS::QueuePolicy"));
      for (const queueId of Object.keys(resourcesOf(template, "AWS::SQS::Queue"))) {
        const policy = policies.find((p) =>
          asArray<Json>(p.Properties.Queues).some((q) => q.Ref === queueId),
        );
        expect(policy, queueId).toBeDefined();
        expect(policy?.Properties.PolicyDocument.Statement).toContainEqual(
          expect.objectContaining({
            Effect: "Deny",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        );
      }
    });

    it("has a user-data FIFO queue with a FIFO DLQ and no content-based deduplication", () => {
      const stage = synth.pristine.config.stage;
      const queues = resourcesOf(template, "AWS::SQS::Queue");
      const userData = stack.queues.byKind["user-data"];
      const queue = queues[logicalId(stack, userData.queue)]?.Properties;
      const dlq = queues[logicalId(stack, userData.deadLetterQueue)]?.Properties;
      expect(queue).toMatchObject({
        QueueName: `pristine-${stage}-user-data.fifo`,
        FifoQueue: true,
        ContentBasedDeduplication: false,
        SqsManagedSseEnabled: true,
      });
      expect(dlq).toMatchObject({ QueueName: `pristine-${stage}-user-data-dlq.fifo`, FifoQueue: true });
      // Only the user-data queues are FIFO.
      const fifo = Object.entries(queues).filter(([, q]) => q.Properties.FifoQueue);
      expect(fifo.map(([id]) => queueIds.get(id)).sort()).toEqual(["user-data", "user-data-dlq"]);
      // The user-data worker consumes it, reporting partial failures (the handler keeps each group's order).
      template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
        EventSourceArn: { "Fn::GetAtt": [logicalId(stack, userData.queue), "Arn"] },
        FunctionName: { Ref: logicalId(stack, stack.functions["user-data-worker"].fn) },
        FunctionResponseTypes: ["ReportBatchItemFailures"],
      });
    });

    it("reports partial batch failures and bounds concurrency on every event source mapping", () => {
      const mappings = Object.values(resourcesOf(template, "AWS::Lambda::EventSourceMapping"));
      expect(mappings).toHaveLength(4);
      for (const m of mappings) {
        expect(m.Properties.FunctionResponseTypes).toEqual(["ReportBatchItemFailures"]);
        expect(m.Properties.ScalingConfig.MaximumConcurrency).toBeGreaterThanOrEqual(2);
        expect(m.Properties.ScalingConfig.MaximumConcurrency).toBeLessThanOrEqual(20);
        expect(m.Properties.BatchSize).toBeGreaterThanOrEqual(1);
        expect(m.Properties.BatchSize).toBeLessThanOrEqual(10);
      }
    });

    it("sets each queue's visibility timeout to 6x its consumer's timeout", () => {
      const queues = resourcesOf(template, "AWS::SQS::Queue");
      const functions = resourcesOf(template, "AWS::Lambda::Function");
      for (const m of Object.values(resourcesOf(template, "AWS::Lambda::EventSourceMapping"))) {
        const queue = queues[m.Properties.EventSourceArn["Fn::GetAtt"][0]];
        const fn = functions[m.Properties.FunctionName.Ref];
        expect(queue?.Properties.VisibilityTimeout).toBe(6 * fn?.Properties.Timeout);
      }
      expect(FUNCTION_TIMEOUTS["clone-worker"].toSeconds() * 6).toBe(
        queues[logicalId(stack, stack.queues.byKind["clone-jobs"].queue)]?.Properties.VisibilityTimeout,
      );
    });

    it("has one table with PITR, deletion protection, TTL, gsi1, gsi2 and retention", () => {
      template.resourceCountIs("AWS::DynamoDB::Table", 1);
      template.hasResource("AWS::DynamoDB::Table", {
        DeletionPolicy: "Retain",
        UpdateReplacePolicy: "Retain",
        Properties: {
          TableName: `pristine-${synth.pristine.config.stage}`,
          BillingMode: "PAY_PER_REQUEST",
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          DeletionProtectionEnabled: true,
          TimeToLiveSpecification: { AttributeName: "expiresAt", Enabled: true },
          SSESpecification: { SSEEnabled: true },
          KeySchema: [
            { AttributeName: "pk", KeyType: "HASH" },
            { AttributeName: "sk", KeyType: "RANGE" },
          ],
          GlobalSecondaryIndexes: [
            Match.objectLike({
              IndexName: "gsi1",
              KeySchema: [
                { AttributeName: "gsi1pk", KeyType: "HASH" },
                { AttributeName: "gsi1sk", KeyType: "RANGE" },
              ],
            }),
            // The reconciler's sparse watch index: it finds what waits without a scan.
            Match.objectLike({
              IndexName: "gsi2",
              KeySchema: [
                { AttributeName: "gsi2pk", KeyType: "HASH" },
                { AttributeName: "gsi2sk", KeyType: "RANGE" },
              ],
            }),
          ],
        },
      });
    });

    it("builds the table's keys, indexes and TTL from the schema the local runtime uses", () => {
      const [table] = Object.values(resourcesOf(template, "AWS::DynamoDB::Table"));
      const p = table?.Properties;
      expect(p.KeySchema).toEqual([
        { AttributeName: tableSchema.partitionKey, KeyType: "HASH" },
        { AttributeName: tableSchema.sortKey, KeyType: "RANGE" },
      ]);
      expect(
        p.GlobalSecondaryIndexes.map((i: Json) => ({
          name: i.IndexName,
          partitionKey: i.KeySchema.find((k: Json) => k.KeyType === "HASH").AttributeName,
          sortKey: i.KeySchema.find((k: Json) => k.KeyType === "RANGE").AttributeName,
        })),
      ).toEqual(tableSchema.indexes);
      expect(p.TimeToLiveSpecification.AttributeName).toBe(tableSchema.ttlAttribute);
      const keyAttributes = [tableSchema.partitionKey, tableSchema.sortKey];
      for (const i of tableSchema.indexes) keyAttributes.push(i.partitionKey, i.sortKey);
      expect(p.AttributeDefinitions.map((a: Json) => a.AttributeName).sort()).toEqual(keyAttributes.sort());
    });

    it("allows no wildcard action in any policy statement", () => {
      const statements = allStatements(template);
      expect(statements.length).toBeGreaterThan(20);
      for (const st of statements) {
        expect(st.NotAction, JSON.stringify(st)).toBeUndefined();
        const actions = asArray<string>(st.Action);
        if (st.Effect === "Allow") {
          for (const action of actions) expect(action, JSON.stringify(st)).not.toContain("*");
        } else {
          // The only wildcard denies are the TLS-only guards of enforceSSL / minimumTLSVersion.
          const wildcard = actions.some((a) => a.includes("*"));
          if (wildcard) {
            expect(JSON.stringify(st.Condition), JSON.stringify(st)).toMatch(
              /aws:SecureTransport|s3:TlsVersion/,
            );
          }
        }
      }
    });

    it("lets each function touch only its own queues", () => {
      const peerQueueArn = stack.resolve(stack.peer.replicationQueueArn) as Json;
      for (const name of FUNCTION_NAMES) {
        const fn = stack.functions[name];
        const statements = roleStatements(template, logicalId(stack, fn.role));
        const access = new Map<string, Set<string>>();
        for (const st of statements) {
          const actions = asArray<string>(st.Action).filter((a) => a.startsWith("sqs:"));
          if (actions.length === 0) continue;
          for (const resource of asArray(st.Resource)) {
            const queue = queueOfResource(resource, queueIds, peerQueueArn);
            const set = access.get(queue) ?? new Set<string>();
            for (const a of actions) set.add(a);
            access.set(queue, set);
          }
        }
        const expected = SQS_ACCESS[name];
        expect([...access.keys()].sort(), name).toEqual(
          [...new Set([...expected.send, ...expected.consume])].sort(),
        );
        for (const [queue, actions] of access) {
          expect(actions.has("sqs:SendMessage"), `${name} send ${queue}`).toBe(
            expected.send.includes(queue as QueueAccess),
          );
          expect(actions.has("sqs:ReceiveMessage"), `${name} receive ${queue}`).toBe(
            expected.consume.includes(queue as QueueKind),
          );
          expect(actions.has("sqs:DeleteMessage"), `${name} delete ${queue}`).toBe(
            expected.consume.includes(queue as QueueKind),
          );
        }
      }
    });

    it("gives the authorizer read-only table access and nothing else", () => {
      const fn = stack.functions.authorizer;
      const actions = roleStatements(template, logicalId(stack, fn.role)).flatMap((st) =>
        asArray<string>(st.Action),
      );
      expect(actions.filter((a) => !a.startsWith("logs:") && !a.startsWith("dynamodb:"))).toEqual([]);
      for (const write of [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
      ]) {
        expect(actions).not.toContain(write);
      }
    });

    it("runs every function on Node 24, arm64, ESM with source maps and only its own variables", () => {
      const functions = resourcesOf(template, "AWS::Lambda::Function");
      for (const name of FUNCTION_NAMES) {
        const fn = functions[logicalId(stack, stack.functions[name].fn)];
        expect(fn?.Properties.Runtime, name).toBe("nodejs24.x");
        expect(fn?.Properties.Architectures, name).toEqual(["arm64"]);
        expect(fn?.Properties.Handler, name).toBe("index.handler");
        const variables = fn?.Properties.Environment.Variables as Json;
        expect(variables.NODE_OPTIONS).toBe("--enable-source-maps");
        expect(variables.POWERTOOLS_SERVICE_NAME).toBe(`pristine-${name}`);
        expect(Object.keys(variables).sort(), name).toEqual(
          [...ENVIRONMENT[name], "NODE_OPTIONS", "POWERTOOLS_SERVICE_NAME"].sort(),
        );
      }
      const role = stack.role;
      const vars = (name: FunctionName) =>
        functions[logicalId(stack, stack.functions[name].fn)]?.Properties.Environment.Variables as Json;
      expect(role).toMatch(/^(primary|dr)$/);
      expect(vars("api").PRISTINE_REGION_NAME).toBe(stack.region);
      expect(vars("user-data-worker").PRISTINE_REGION_NAME).toBe(stack.region);
      expect(vars("replication-worker").PRISTINE_PEER_REGION_NAME).toBe(stack.peerRegion);
      expect(vars("replication-worker").PRISTINE_PEER_AWS_REGION).toBe(stack.peerRegion);
      expect(vars("clone-worker").PRISTINE_DATASTORE_PATH).toBe("/mnt/datastore");
      for (const name of ["api", "user-data-worker", "replication-worker"] as const) {
        expect(vars(name).PRISTINE_USER_DATA_PATH, name).toBe("/mnt/datastore/userdata");
      }
      expect(vars("authorizer").PRISTINE_OPERATOR_KEY_SHA256).toBe(OPERATOR_KEY_PLACEHOLDER);
    });

    it("loads the code's configuration from every function's environment", () => {
      const functions = resourcesOf(template, "AWS::Lambda::Function");
      const configs = new Map<FunctionName, ReturnType<typeof loadConfig>>();
      for (const name of FUNCTION_NAMES) {
        const variables = functions[logicalId(stack, stack.functions[name].fn)]?.Properties.Environment
          .Variables as Json;
        const env = plausibleEnvironment(variables);
        expect(() => loadConfig(env), name).not.toThrow();
        configs.set(name, loadConfig(env));
      }
      const dr = (name: FunctionName) => configs.get(name)?.dr;
      // Producers find their queues; the user-data store is on the datastore.
      for (const name of ["api", "logoff", "replication-worker"] as const)
        expect(dr(name)?.userDataQueueUrl, name).toBeDefined();
      for (const name of ["api", "clone-worker", "user-data-worker", "replication-worker"] as const) {
        expect(dr(name)?.replicationQueueUrl, name).toBeDefined();
        // A peer is configured wherever the code enqueues replication work only if there is one.
        expect(dr(name)?.peer, name).toMatchObject({ name: stack.peerRegion, awsRegion: stack.peerRegion });
      }
      for (const name of ["api", "user-data-worker", "replication-worker"] as const)
        expect(dr(name)?.userDataPath, name).toBe("/mnt/datastore/userdata");
      expect(dr("replication-worker")?.replicationBucket).toBeDefined();
      const replication = configs.get("replication-worker");
      expect(replication?.regionName).toBe(stack.region);
      expect(replication?.defaultDatastore).toMatchObject({
        datastoreId: synth.pristine.config.datastore.id,
        path: "/mnt/datastore",
        capacityGiB: synth.pristine.config.datastore.capacityGiB,
      });
      for (const name of ["api", "clone-worker", "logoff", "reconciler", "replication-worker"] as const)
        expect(configs.get(name)?.cloneJobsQueueUrl, name).toBeDefined();
    });

    it("mounts the encrypted EFS access point at /mnt/datastore in the functions that use the datastore", () => {
      template.hasResourceProperties("AWS::EFS::FileSystem", { Encrypted: true });
      template.resourceCountIs("AWS::EFS::AccessPoint", 1);
      const functions = resourcesOf(template, "AWS::Lambda::Function");
      const mounting = Object.entries(functions).filter(([, f]) => f.Properties.FileSystemConfigs);
      expect(mounting.map(([id]) => id).sort()).toEqual(
        MOUNTS_DATASTORE.map((name) => logicalId(stack, stack.functions[name].fn)).sort(),
      );
      for (const [, f] of mounting) {
        expect(f.Properties.FileSystemConfigs[0].LocalMountPath).toBe("/mnt/datastore");
        expect(f.Properties.VpcConfig).toBeDefined();
      }
      // No NAT: DynamoDB and S3 through gateway endpoints, SQS through an interface endpoint.
      template.resourceCountIs("AWS::EC2::NatGateway", 0);
      template.resourceCountIs("AWS::EC2::InternetGateway", 0);
      const endpoints = Object.values(resourcesOf(template, "AWS::EC2::VPCEndpoint")).map((e) => [
        e.Properties.VpcEndpointType,
        JSON.stringify(e.Properties.ServiceName),
      ]);
      expect(endpoints).toEqual(
        expect.arrayContaining([
          ["Gateway", expect.stringContaining("dynamodb")],
          ["Gateway", expect.stringContaining("s3")],
          ["Interface", expect.stringContaining("sqs")],
        ]),
      );
    });

    it("blocks public access and enforces TLS on every bucket", () => {
      const buckets = resourcesOf(template, "AWS::S3::Bucket");
      const policies = Object.values(resourcesOf(template, "AWS::S3::BucketPolicy"));
      expect(Object.keys(buckets)).toHaveLength(3);
      for (const [id, bucket] of Object.entries(buckets)) {
        expect(bucket.DeletionPolicy, id).toBe("Retain");
        expect(bucket.Properties.PublicAccessBlockConfiguration, id).toEqual({
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        });
        expect(bucket.Properties.BucketEncryption, id).toBeDefined();
        const policy = policies.find((p) => p.Properties.Bucket.Ref === id);
        expect(policy?.Properties.PolicyDocument.Statement, id).toContainEqual(
          expect.objectContaining({
            Effect: "Deny",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        );
      }
      for (const bucket of [stack.storage.images, stack.storage.replication]) {
        const props = buckets[logicalId(stack, bucket)]?.Properties;
        expect(props.VersioningConfiguration).toEqual({ Status: "Enabled" });
        expect(props.LoggingConfiguration.DestinationBucketName).toEqual({
          Ref: logicalId(stack, stack.storage.accessLogs),
        });
      }
    });

    it("expires the replication bucket's deleted user-data deltas and abandoned multipart uploads", () => {
      const rules = resourcesOf(template, "AWS::S3::Bucket")[logicalId(stack, stack.storage.replication)]
        ?.Properties.LifecycleConfiguration.Rules as Json[];
      // The code deletes a delta once a later version is applied; the versioned bucket keeps it as a
      // noncurrent version for a few days, then this rule removes it and its delete marker. Current
      // objects (a delta not yet applied) never expire by age.
      const deltas = rules.find((r) => r.Prefix === "userdata/" || r.Filter?.Prefix === "userdata/");
      expect(deltas).toMatchObject({
        Status: "Enabled",
        NoncurrentVersionExpiration: { NoncurrentDays: 3 },
        ExpiredObjectDeleteMarker: true,
      });
      expect(deltas?.ExpirationInDays).toBeUndefined();
      for (const rule of rules) expect(rule.ExpirationInDays, rule.Id).toBeUndefined();
      expect(rules).toContainEqual(
        expect.objectContaining({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }),
      );
    });

    it("sizes the replication worker's temporary storage, and tells the code its limit", () => {
      const functions = resourcesOf(template, "AWS::Lambda::Function");
      const fn = functions[logicalId(stack, stack.functions["replication-worker"].fn)]?.Properties;
      const mib = fn.EphemeralStorage?.Size as number;
      expect(mib).toBeGreaterThanOrEqual(512);
      expect(fn.Environment.Variables.PRISTINE_TMP_LIMIT_MIB).toBe(String(mib));
      expect(Number(fn.Environment.Variables.PRISTINE_UPLOAD_PART_SIZE_MIB)).toBeGreaterThanOrEqual(5);
    });

    it("routes the desktop agents' session events from pristine.desktop to the logoff queue", () => {
      template.hasResourceProperties("AWS::Events::Rule", {
        EventPattern: {
          source: ["pristine.desktop"],
          "detail-type": ["Session Logoff", "Session Disconnected", "Session Reconnected", "Session Idle"],
        },
        Targets: [
          Match.objectLike({
            Arn: { "Fn::GetAtt": [logicalId(stack, stack.queues.byKind.logoff.queue), "Arn"] },
          }),
        ],
      });
      template.hasResourceProperties("AWS::SQS::QueuePolicy", {
        Queues: [{ Ref: logicalId(stack, stack.queues.byKind.logoff.queue) }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: "Allow",
              Principal: { Service: "events.amazonaws.com" },
              Action: Match.arrayWith(["sqs:SendMessage"]),
            }),
          ]),
        },
      });
    });

    it("starts the DR readiness checks on the reconciler's second schedule, and alarms on their failures", () => {
      template.hasResourceProperties("AWS::Events::Rule", {
        ScheduleExpression: "rate(15 minutes)",
        Targets: [
          Match.objectLike({
            Arn: { "Fn::GetAtt": [logicalId(stack, stack.functions.reconciler.fn), "Arn"] },
            Input: JSON.stringify({ task: "readiness" }),
          }),
        ],
      });
      const functions = resourcesOf(template, "AWS::Lambda::Function");
      for (const name of ["api", "reconciler", "replication-worker"] as const) {
        const variables = functions[logicalId(stack, stack.functions[name].fn)]?.Properties.Environment
          .Variables as Json;
        expect(loadConfig(plausibleEnvironment(variables)).timing.readinessPeriodMs, name).toBe(15 * 60_000);
      }
      const alarms = Object.values(resourcesOf(template, "AWS::CloudWatch::Alarm"))
        .map((a) => a.Properties)
        .filter((a) => a.MetricName === "readinessFailures");
      // The check runs in the replication worker (DR's checks and the primary's received reports).
      expect(alarms).toEqual([
        expect.objectContaining({
          Namespace: "Pristine",
          Dimensions: [{ Name: "service", Value: "pristine-replication-worker" }],
          Threshold: 1,
          ComparisonOperator: "GreaterThanOrEqualToThreshold",
          AlarmActions: [expect.anything()],
        }),
      ]);
    });

    it("runs the reconciler on a schedule", () => {
      template.hasResourceProperties("AWS::Events::Rule", {
        ScheduleExpression: "rate(1 minute)",
        Targets: [
          Match.objectLike({
            Arn: { "Fn::GetAtt": [logicalId(stack, stack.functions.reconciler.fn), "Arn"] },
          }),
        ],
      });
    });

    it("fronts the api with an HTTP API, a cached simple-response authorizer, throttling and access logs", () => {
      template.hasResourceProperties("AWS::ApiGatewayV2::Authorizer", {
        AuthorizerType: "REQUEST",
        EnableSimpleResponses: true,
        IdentitySource: ["$request.header.Authorization"],
        AuthorizerResultTtlInSeconds: Match.anyValue(),
      });
      template.hasResourceProperties("AWS::ApiGatewayV2::Route", {
        RouteKey: "ANY /v1/{proxy+}",
        AuthorizationType: "CUSTOM",
      });
      for (const open of ["GET /health", "GET /v1/openapi.json", "GET /console", "GET /console/{asset}"])
        template.hasResourceProperties("AWS::ApiGatewayV2::Route", {
          RouteKey: open,
          AuthorizationType: "NONE",
        });
      template.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
        StageName: "$default",
        AutoDeploy: true,
        AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp("requestId") },
        DefaultRouteSettings: {
          ThrottlingRateLimit: Match.anyValue(),
          ThrottlingBurstLimit: Match.anyValue(),
        },
      });
    });

    it("alarms on DLQ depth, queue age, and errors and throttles of every function", () => {
      const alarms = Object.values(resourcesOf(template, "AWS::CloudWatch::Alarm")).map((a) => a.Properties);
      const on = (metric: string, dimension: Json) =>
        alarms.filter(
          (a) =>
            a.MetricName === metric &&
            a.Dimensions.some((d: Json) => JSON.stringify(d.Value) === JSON.stringify(dimension)),
        );
      for (const kind of QUEUE_KINDS) {
        const wq = stack.queues.byKind[kind];
        const dlqAlarms = on("ApproximateNumberOfMessagesVisible", {
          "Fn::GetAtt": [logicalId(stack, wq.deadLetterQueue), "QueueName"],
        });
        expect(dlqAlarms, kind).toHaveLength(1);
        expect(dlqAlarms[0]).toMatchObject({ Threshold: 0, ComparisonOperator: "GreaterThanThreshold" });
        expect(
          on("ApproximateAgeOfOldestMessage", { "Fn::GetAtt": [logicalId(stack, wq.queue), "QueueName"] }),
        ).toHaveLength(1);
      }
      for (const name of FUNCTION_NAMES) {
        const ref = { Ref: logicalId(stack, stack.functions[name].fn) };
        expect(on("Errors", ref), name).toHaveLength(1);
        expect(on("Throttles", ref), name).toHaveLength(1);
      }
      for (const a of alarms) expect(a.AlarmActions).toHaveLength(1);
    });

    it("has a dashboard with one graph for every figure of the metric catalogue", () => {
      const dashboards = Object.values(resourcesOf(template, "AWS::CloudWatch::Dashboard"));
      expect(dashboards).toHaveLength(1);
      // The body is a JSON string inside the template's JSON: quotes arrive escaped, as \\\".
      const body = JSON.stringify(dashboards[0]?.Properties.DashboardBody).replace(/\\+"/g, '"');
      for (const name of metricNames)
        expect(body, name).toContain(
          `SEARCH('{Pristine,${isPerPool(name) ? "poolId,service" : "service"}} MetricName="${name}"`,
        );
    });
  });

  it("has no EC2 host while pristine:hostFleet is off", () => {
    expect(synth.pristine.config.hostFleet).toBeUndefined();
    for (const stack of [synth.pristine.primary, synth.pristine.dr]) {
      const template = synth.templates.get(stack) as Template;
      for (const type of [
        "AWS::EC2::Instance",
        "AWS::AutoScaling::AutoScalingGroup",
        "AWS::EC2::LaunchTemplate",
        "AWS::IAM::InstanceProfile",
      ]) {
        template.resourceCountIs(type, 0);
      }
      expect(stack.hostFleet).toBeUndefined();
      expect(template.toJSON().Parameters).toEqual({ BootstrapVersion: expect.any(Object) });
    }
  });

  it("derives each region's peer bucket and queue from the other stack's names", () => {
    const { primary, dr } = synth.pristine;
    for (const [self, peer] of [
      [primary, dr],
      [dr, primary],
    ] as const) {
      const selfTemplate = synth.templates.get(self) as Template;
      const peerTemplate = synth.templates.get(peer) as Template;
      const peerBucketName = resourcesOf(peerTemplate, "AWS::S3::Bucket")[
        logicalId(peer, peer.storage.replication)
      ]?.Properties.BucketName;
      expect(JSON.stringify(peerBucketName)).toContain(`replication-`);
      const peerQueueName = resourcesOf(peerTemplate, "AWS::SQS::Queue")[
        logicalId(peer, peer.queues.byKind.replication.queue)
      ]?.Properties.QueueName as string;
      const functions = resourcesOf(selfTemplate, "AWS::Lambda::Function");
      const vars = (s: PristineStack, t: Template, name: FunctionName) =>
        resourcesOf(t, "AWS::Lambda::Function")[logicalId(s, s.functions[name].fn)]?.Properties.Environment
          .Variables as Json;
      const own = vars(self, selfTemplate, "replication-worker");
      expect(functions).toBeDefined();
      expect(own.PRISTINE_PEER_BUCKET).toEqual(peerBucketName);
      expect(own.PRISTINE_PEER_REGION_NAME).toBe(
        vars(peer, peerTemplate, "replication-worker").PRISTINE_REGION_NAME,
      );
      expect(own.PRISTINE_PEER_AWS_REGION).toBe(peer.region);
      // The failover (api) fences the tenant in the peer's own table: its name, and UpdateItem on it.
      const api = vars(self, selfTemplate, "api");
      const peerTable = resourcesOf(peerTemplate, "AWS::DynamoDB::Table")[logicalId(peer, peer.data.table)]
        ?.Properties.TableName;
      expect(api.PRISTINE_PEER_TABLE_NAME).toBe(peerTable);
      const fence = roleStatements(selfTemplate, logicalId(self, self.functions.api.role)).filter((st) =>
        asArray<string>(st.Action).includes("dynamodb:UpdateItem"),
      );
      expect(JSON.stringify(fence)).toContain(`:dynamodb:${peer.region}:`);
      const url = JSON.stringify(own.PRISTINE_PEER_REPLICATION_QUEUE_URL);
      expect(url).toContain(`https://sqs.${peer.region}.`);
      expect(url).toContain(`/${peerQueueName}"`);

      const statements = roleStatements(
        selfTemplate,
        logicalId(self, self.functions["replication-worker"].role),
      );
      const s3 = (action: string) => statements.filter((st) => asArray<string>(st.Action).includes(action));
      // It may put objects into the peer's bucket (and nowhere else) ...
      expect(s3("s3:PutObject")).toHaveLength(1);
      const put = JSON.stringify(s3("s3:PutObject")[0]?.Resource);
      expect(put).toContain("replication-");
      expect(put).toContain(`-${peer.region}/*`);
      // ... in parts (lib-storage's Upload aborts a failed multipart upload and may list its parts) ...
      for (const action of ["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]) {
        expect(s3(action), action).toHaveLength(1);
        expect(s3(action)[0]?.Resource, action).toEqual(s3("s3:PutObject")[0]?.Resource);
      }
      // ... read its own replication bucket, and delete objects there only (applied and superseded
      // deltas; deleted image versions), never in the peer's.
      const ownObjects = {
        "Fn::Join": ["", [{ "Fn::GetAtt": [logicalId(self, self.storage.replication), "Arn"] }, "/*"]],
      };
      expect(s3("s3:GetObject").map((st) => st.Resource)).toEqual([ownObjects]);
      expect(s3("s3:DeleteObject").map((st) => st.Resource)).toEqual([ownObjects]);
      // ... and send to the peer's replication queue, an ARN in the peer's region.
      const peerArn = JSON.stringify(self.resolve(self.peer.replicationQueueArn));
      expect(peerArn).toContain(`:sqs:${peer.region}:`);
      expect(peerArn).toContain(`:${peerQueueName}"`);
      const peerSend = statements.filter((st) =>
        asArray<unknown>(st.Resource).some((r) => JSON.stringify(r) === peerArn),
      );
      expect(peerSend).toHaveLength(1);
      expect(peerSend[0]?.Action).toBe("sqs:SendMessage");
      // No other function can reach the peer.
      for (const name of FUNCTION_NAMES.filter((n) => n !== "replication-worker")) {
        const other = JSON.stringify(
          roleStatements(selfTemplate, logicalId(self, self.functions[name].role)),
        );
        expect(other, name).not.toContain(`-${peer.region}`);
        expect(other, name).not.toContain(`:sqs:${peer.region}:`);
      }
    }
  });

  it("keeps the replication worker in the isolated subnets and warns, without pristine:natForReplication", () => {
    for (const stack of [synth.pristine.primary, synth.pristine.dr]) {
      const template = synth.templates.get(stack) as Template;
      template.resourceCountIs("AWS::EC2::NatGateway", 0);
      const warnings = violationsOf(synth.report, "Construct Annotations").filter((v) =>
        JSON.stringify(v).includes("pristine:noNatForReplication"),
      );
      expect(warnings.length).toBeGreaterThanOrEqual(1);
    }
  });
});

describe("with pristine:natForReplication", () => {
  let synth: Synthesized;
  beforeAll(() => {
    synth = synthesize({ "pristine:natForReplication": "true" });
  });

  it("runs the replication worker, and only it, in private subnets behind one NAT gateway", () => {
    expect(violationsOf(synth.report, "AwsSolutions")).toEqual([]);
    expect(JSON.stringify(violationsOf(synth.report, "Construct Annotations"))).not.toContain(
      "pristine:noNatForReplication",
    );
    for (const stack of [synth.pristine.primary, synth.pristine.dr]) {
      const template = synth.templates.get(stack) as Template;
      template.resourceCountIs("AWS::EC2::NatGateway", 1);
      const subnets = resourcesOf(template, "AWS::EC2::Subnet");
      const subnetType = (ref: Json) =>
        asArray<Json>(subnets[ref.Ref]?.Properties.Tags).find((t) => t.Key === "aws-cdk:subnet-type")?.Value;
      const functions = resourcesOf(template, "AWS::Lambda::Function");
      for (const name of MOUNTS_DATASTORE) {
        const fn = functions[logicalId(stack, stack.functions[name].fn)];
        const types = new Set(asArray<Json>(fn?.Properties.VpcConfig.SubnetIds).map(subnetType));
        expect([...types], name).toEqual([name === "replication-worker" ? "Private" : "Isolated"]);
        expect(fn?.Properties.FileSystemConfigs[0].LocalMountPath, name).toBe("/mnt/datastore");
      }
      // The isolated subnets keep their ranges when the flag is turned on.
      const isolated = Object.values(subnets).filter((sn) =>
        (sn.Properties.Tags as Json[]).some((t) => t.Value === "Isolated"),
      );
      expect(isolated.map((sn) => sn.Properties.CidrBlock).sort()).toEqual(
        stack.role === "primary" ? ["10.80.0.0/22", "10.80.4.0/22"] : ["10.81.0.0/22", "10.81.4.0/22"],
      );
    }
  });
});

describe("with an account and host-local datastores", () => {
  let synth: Synthesized;
  beforeAll(() => {
    synth = synthesize({
      "pristine:account": "123456789012",
      "pristine:stage": "test",
      "pristine:datastore": JSON.stringify({
        id: "efs-1",
        capacityGiB: 2048,
        overcommit: 6,
        hostDatastores: ["host-a"],
      }),
      "pristine:operatorKeySha256": "a".repeat(64),
    });
  });

  it("synthesizes without lookups and uses literal names", () => {
    expect(synth.manifest.missing).toBeUndefined();
    expect(violationsOf(synth.report, "AwsSolutions")).toEqual([]);
    const template = synth.templates.get(synth.pristine.primary) as Template;
    template.hasResourceProperties("AWS::S3::Bucket", {
      BucketName: "pristine-test-replication-123456789012-eu-west-1",
    });
    template.hasResourceProperties("AWS::SQS::Queue", { QueueName: "pristine-test-datastore-host-a" });
  });

  it("gives the host agent its own queue and role, and clone-job producers the queue map", () => {
    const stack = synth.pristine.primary;
    const template = synth.templates.get(stack) as Template;
    const hostQueue = stack.queues.hostDatastores.get("host-a");
    expect(hostQueue).toBeDefined();
    const role = stack.workers.agentRoles.get("host-a");
    expect(role).toBeDefined();
    if (!hostQueue || !role) return;
    const statements = roleStatements(template, logicalId(stack, role));
    expect(statements).toContainEqual(
      expect.objectContaining({
        Action: expect.arrayContaining(["sqs:ReceiveMessage", "sqs:DeleteMessage"]),
        Resource: { "Fn::GetAtt": [logicalId(stack, hostQueue.queue), "Arn"] },
      }),
    );
    const fn = resourcesOf(template, "AWS::Lambda::Function")[logicalId(stack, stack.functions.api.fn)];
    expect(JSON.stringify(fn?.Properties.Environment.Variables.PRISTINE_DATASTORE_QUEUE_URLS)).toContain(
      "host-a",
    );
    // Only producers of clone jobs may send to it (drills and failovers in the replication worker
    // place pools too); the user-data worker may not.
    const replication = roleStatements(
      template,
      logicalId(stack, stack.functions["replication-worker"].role),
    );
    expect(JSON.stringify(replication)).toContain(logicalId(stack, hostQueue.queue));
    const userData = roleStatements(template, logicalId(stack, stack.functions["user-data-worker"].role));
    expect(JSON.stringify(userData)).not.toContain(logicalId(stack, hostQueue.queue));
  });

  it("runs no EC2 host for them without pristine:hostFleet (the agent role is for hosts of their own)", () => {
    for (const stack of [synth.pristine.primary, synth.pristine.dr]) {
      const template = synth.templates.get(stack) as Template;
      template.resourceCountIs("AWS::EC2::Instance", 0);
      template.resourceCountIs("AWS::AutoScaling::AutoScalingGroup", 0);
      const role = resourcesOf(template, "AWS::IAM::Role")[
        logicalId(stack, stack.workers.agentRoles.get("host-a") as never)
      ];
      expect(JSON.stringify(role?.Properties.AssumeRolePolicyDocument)).not.toContain("ec2.amazonaws.com");
      expect(JSON.stringify(allStatements(template))).not.toContain("events:PutEvents");
    }
  });
});

describe("the cdk-nag check itself", () => {
  it("reports a non-compliant resource (the report parsing is not vacuous)", () => {
    const outdir = tempOutdir("pristine-cdk-nag-");
    const app = new App({ outdir, context: { "@aws-cdk/core:failSynthOnValidationErrors": false } });
    new sqs.Queue(new Stack(app, "Bare"), "Queue");
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const assembly = app.synth();
    const report = JSON.parse(readFileSync(path.join(assembly.directory, "validation-report.json"), "utf8"));
    const rules = violationsOf(report, "AwsSolutions").map((v) => v.ruleName);
    expect(rules).toEqual(expect.arrayContaining(["AwsSolutions-SQS3", "AwsSolutions-SQS4"]));
  });
});

describe("configuration", () => {
  const config = (context: Record<string, unknown>) => readConfig(new App({ context }).node);

  it("defaults to dev in eu-west-1 and eu-central-1 with the placeholder operator key", () => {
    const c = config({});
    expect([c.stage, c.primaryRegion, c.drRegion, c.account]).toEqual([
      "dev",
      "eu-west-1",
      "eu-central-1",
      undefined,
    ]);
    expect(c.operatorKeyIsPlaceholder).toBe(true);
    expect(c.operatorKeySha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("rejects bad values with the context key in the message", () => {
    expect(() => config({ "pristine:stage": "Prod!" })).toThrow(/pristine:stage/);
    expect(() => config({ "pristine:drRegion": "eu-west-1" })).toThrow(/pristine:drRegion/);
    expect(() => config({ "pristine:account": "12" })).toThrow(/pristine:account/);
    expect(() => config({ "pristine:operatorKeySha256": "secret" })).toThrow(/pristine:operatorKeySha256/);
    expect(() => config({ "pristine:datastore": "{not json" })).toThrow(/pristine:datastore/);
    expect(() => config({ "pristine:datastore": { overcommit: 0 } })).toThrow(/overcommit/);
    expect(() =>
      config({ "pristine:qemuImgLayerArns": { "eu-west-1": "arn:aws:lambda:us-east-1:1:layer:q:1" } }),
    ).toThrow(/qemuImgLayerArns/);
  });
});
