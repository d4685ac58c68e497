import { Stack } from "aws-cdk-lib";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import { Construct } from "constructs";
import type { RegionRole } from "../names.ts";
import { grantTableReadWrite } from "./data.ts";
import { DATASTORE_MOUNT_PATH, type EfsDatastore } from "./datastore.ts";
import { PristineFunction } from "./lambda-function.ts";
import type { Queues, WorkQueue } from "./queues.ts";
import { grantObjectRead, grantObjectReadWrite, type Storage } from "./storage.ts";

/** Batch size and concurrency cap of each SQS event source (all report partial batch failures). */
export const EVENT_SOURCES = {
  // Each job may create a replica (a whole image copy), so batches stay small.
  "clone-worker": { batchSize: 5, maxConcurrency: 10 },
  // Logoff events are small and latency matters (a refreshed desktop goes back to the pool).
  logoff: { batchSize: 10, maxConcurrency: 10 },
  // Deltas can be large; few in parallel to bound the egress to the peer region.
  "replication-worker": { batchSize: 5, maxConcurrency: 5 },
} as const;

export interface WorkersProps {
  readonly stage: string;
  readonly role: RegionRole;
  readonly peerRegion: string;
  readonly table: dynamodb.Table;
  readonly queues: Queues;
  readonly storage: Storage;
  readonly datastore: EfsDatastore;
  /** Id of the EFS datastore the clone worker mounts (pristine:datastore.id). */
  readonly datastoreId: string;
  /** Lambda layer with `qemu-img` in /opt/bin for the clone worker, when configured. */
  readonly qemuImgLayerArn: string | undefined;
}

/** The queue consumers (clone worker, logoff, replication worker) and the reconciler. */
export class Workers extends Construct {
  readonly cloneWorker: PristineFunction;
  readonly logoff: PristineFunction;
  readonly replicationWorker: PristineFunction;
  readonly reconciler: PristineFunction;
  /** Host-local datastore id -> the role its agent assumes. */
  readonly agentRoles: ReadonlyMap<string, iam.Role>;

  constructor(scope: Construct, id: string, props: WorkersProps) {
    super(scope, id);
    const { table, queues, storage, datastore } = props;
    const tableEnv = { PRISTINE_TABLE_NAME: table.tableName };

    // Clone worker: clone jobs in, linked clones (qemu-img) on the EFS datastore out.
    this.cloneWorker = new PristineFunction(this, "CloneWorker", {
      name: "clone-worker",
      stage: props.stage,
      environment: {
        ...tableEnv,
        ...queues.cloneJobsEnvironment(),
        PRISTINE_DATA_DIR: DATASTORE_MOUNT_PATH,
        PRISTINE_DATASTORE_PATH: DATASTORE_MOUNT_PATH,
        PRISTINE_DATASTORE_ID: props.datastoreId,
        PRISTINE_IMPORT_ROOTS: `${DATASTORE_MOUNT_PATH}/imports`,
        PRISTINE_IMAGE_BUCKET: storage.images.bucketName,
      },
      vpc: datastore.vpc,
      vpcSubnets: datastore.subnets,
      securityGroups: [datastore.clientSecurityGroup],
      filesystem: datastore.lambdaFileSystem(),
      layers: props.qemuImgLayerArn
        ? [lambda.LayerVersion.fromLayerVersionArn(this, "QemuImgLayer", props.qemuImgLayerArn)]
        : undefined,
    });
    grantTableReadWrite(table, this.cloneWorker.role);
    // Follow-up jobs (e.g. the clone after its replica) go back onto the queue.
    queues.grantSendCloneJobs(this.cloneWorker.fn);
    grantObjectRead(storage.images.bucketArn, this.cloneWorker.role);
    this.consume(this.cloneWorker, queues.byKind["clone-jobs"], EVENT_SOURCES["clone-worker"]);

    // Logoff: session logoff events in; refresh/delete jobs out.
    this.logoff = new PristineFunction(this, "Logoff", {
      name: "logoff",
      stage: props.stage,
      environment: { ...tableEnv, ...queues.cloneJobsEnvironment() },
    });
    grantTableReadWrite(table, this.logoff.role);
    queues.grantSendCloneJobs(this.logoff.fn);
    this.consume(this.logoff, queues.byKind.logoff, EVENT_SOURCES.logoff);

    // Replication worker: reads this region's user data, writes the peer region's bucket.
    this.replicationWorker = new PristineFunction(this, "ReplicationWorker", {
      name: "replication-worker",
      stage: props.stage,
      environment: {
        ...tableEnv,
        PRISTINE_REGION_ROLE: props.role,
        PRISTINE_PEER_REGION: props.peerRegion,
        PRISTINE_USER_DATA_BUCKET: storage.userData.bucketName,
        PRISTINE_PEER_USER_DATA_BUCKET: storage.peerUserDataBucketName,
      },
    });
    grantTableReadWrite(table, this.replicationWorker.role);
    grantObjectRead(storage.userData.bucketArn, this.replicationWorker.role);
    grantObjectReadWrite(storage.peerUserDataBucketArn, this.replicationWorker.role);
    this.consume(this.replicationWorker, queues.byKind.replication, EVENT_SOURCES["replication-worker"]);

    // Reconciler: scheduled (see Events); repairs by enqueueing clone jobs.
    this.reconciler = new PristineFunction(this, "Reconciler", {
      name: "reconciler",
      stage: props.stage,
      environment: { ...tableEnv, ...queues.cloneJobsEnvironment(), PRISTINE_REGION_ROLE: props.role },
    });
    grantTableReadWrite(table, this.reconciler.role);
    queues.grantSendCloneJobs(this.reconciler.fn);

    // Agent mode: a hypervisor host runs the clone worker's handler against its own SSD and polls
    // its datastore's queue, with a role that can do what the clone worker Lambda can.
    const agentRoles = new Map<string, iam.Role>();
    for (const [datastoreId, workQueue] of queues.hostDatastores) {
      const role = new iam.Role(this, `Agent-${datastoreId}`, {
        assumedBy: new iam.AccountPrincipal(Stack.of(this).account),
        description: `pristine-${props.stage} clone worker agent of host datastore ${datastoreId}`,
      });
      grantTableReadWrite(table, role);
      workQueue.queue.grantConsumeMessages(role);
      queues.grantSendCloneJobs(role);
      grantObjectRead(storage.images.bucketArn, role);
      agentRoles.set(datastoreId, role);
    }
    this.agentRoles = agentRoles;
  }

  private consume(
    worker: PristineFunction,
    workQueue: WorkQueue,
    settings: { readonly batchSize: number; readonly maxConcurrency: number },
  ): void {
    worker.fn.addEventSource(
      new SqsEventSource(workQueue.queue, {
        batchSize: settings.batchSize,
        maxConcurrency: settings.maxConcurrency,
        reportBatchItemFailures: true,
      }),
    );
  }
}
