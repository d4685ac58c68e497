import { Stack } from "aws-cdk-lib";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import { Construct } from "constructs";
import { DR_EVENT_SOURCES } from "../../shared/workers/scaling.ts";
import type { DatastoreSettings } from "../config.ts";
import { regionName } from "../names.ts";
import { grantTableReadWrite } from "./data.ts";
import {
  DATASTORE_MOUNT_PATH,
  datastoreEnvironment,
  type EfsDatastore,
  USER_DATA_MOUNT_PATH,
} from "./datastore.ts";
import { readinessEnvironment } from "./events.ts";
import { PristineFunction } from "./lambda-function.ts";
import type { PeerRegion } from "./peer.ts";
import { grantSend, type Queues, type WorkQueue } from "./queues.ts";
import { grantObjectDelete, grantObjectRead, type Storage } from "./storage.ts";

/** The replication worker's /tmp: Lambda's default, as nothing large is staged there. */
const REPLICATION_TMP_MIB = 512;
/** Upload part size: 16 MiB parts (two in flight, in 1 GiB of memory) reach S3's 10,000-part cap at 156 GiB. */
const REPLICATION_PART_MIB = 16;

/** Batch size and concurrency cap of each SQS event source (all report partial batch failures). */
export const EVENT_SOURCES = {
  // Each job may create a replica (a whole image copy), so batches stay small.
  "clone-worker": { batchSize: 5, maxConcurrency: 10 },
  // Logoff events are small and latency matters (a refreshed desktop goes back to the pool).
  logoff: { batchSize: 10, maxConcurrency: 10 },
  // The DR workers' figures are shared with the local pollers (shared/workers/scaling.ts).
  ...DR_EVENT_SOURCES,
} as const;

export interface WorkersProps {
  readonly stage: string;
  /** The concrete region of the stack: PRISTINE_REGION_NAME (names.ts regionName). */
  readonly region: string;
  readonly peer: PeerRegion;
  readonly table: dynamodb.Table;
  readonly queues: Queues;
  readonly storage: Storage;
  readonly datastore: EfsDatastore;
  readonly datastoreSettings: DatastoreSettings;
  /** Lambda layer with `qemu-img` in /opt/bin, when configured. */
  readonly qemuImgLayer: lambda.ILayerVersion | undefined;
}

/** The queue consumers (clone, logoff, replication and user-data workers) and the reconciler. */
export class Workers extends Construct {
  readonly cloneWorker: PristineFunction;
  readonly logoff: PristineFunction;
  readonly replicationWorker: PristineFunction;
  readonly userDataWorker: PristineFunction;
  readonly reconciler: PristineFunction;
  /** Host-local datastore id -> the role its agent assumes. */
  readonly agentRoles: ReadonlyMap<string, iam.Role>;

  constructor(scope: Construct, id: string, props: WorkersProps) {
    super(scope, id);
    const { table, queues, storage, datastore, peer } = props;
    const tableEnv = { PRISTINE_TABLE_NAME: table.tableName };
    const userDataQueue = queues.byKind["user-data"].queue;
    const replicationQueue = queues.byKind.replication.queue;
    const layers = props.qemuImgLayer ? [props.qemuImgLayer] : undefined;
    const onDatastore = {
      vpc: datastore.vpc,
      vpcSubnets: datastore.subnets,
      securityGroups: [datastore.clientSecurityGroup],
      filesystem: datastore.lambdaFileSystem(),
    };
    const datastoreEnv = datastoreEnvironment(props.datastoreSettings);

    // Clone worker: clone jobs in, linked clones (qemu-img) on the EFS datastore out. An imported
    // image version asks for the tenant's configuration to be shipped to the peer.
    this.cloneWorker = new PristineFunction(this, "CloneWorker", {
      name: "clone-worker",
      stage: props.stage,
      environment: {
        ...tableEnv,
        ...queues.cloneJobsEnvironment(),
        PRISTINE_DATA_DIR: DATASTORE_MOUNT_PATH,
        PRISTINE_DATASTORE_PATH: DATASTORE_MOUNT_PATH,
        PRISTINE_DATASTORE_ID: props.datastoreSettings.id,
        PRISTINE_IMPORT_ROOTS: `${DATASTORE_MOUNT_PATH}/imports`,
        PRISTINE_REPLICATION_QUEUE_URL: replicationQueue.queueUrl,
        // A session timeout's logoff commits the user's data, as every logoff does.
        PRISTINE_USER_DATA_QUEUE_URL: userDataQueue.queueUrl,
        ...peer.environment(),
      },
      ...onDatastore,
      layers,
    });
    grantTableReadWrite(table, this.cloneWorker.role);
    // Follow-up jobs (e.g. the clone after its replica, a timeout's next check) go back onto the queue.
    queues.grantSendCloneJobs(this.cloneWorker.fn);
    grantSend(replicationQueue, this.cloneWorker.role);
    grantSend(userDataQueue, this.cloneWorker.role);
    this.consume(this.cloneWorker, queues.byKind["clone-jobs"], EVENT_SOURCES["clone-worker"]);

    // Logoff: session logoff events in; refresh/delete jobs and the user's data commit out.
    this.logoff = new PristineFunction(this, "Logoff", {
      name: "logoff",
      stage: props.stage,
      environment: {
        ...tableEnv,
        ...queues.cloneJobsEnvironment(),
        PRISTINE_USER_DATA_QUEUE_URL: userDataQueue.queueUrl,
      },
    });
    grantTableReadWrite(table, this.logoff.role);
    queues.grantSendCloneJobs(this.logoff.fn);
    grantSend(userDataQueue, this.logoff.role);
    this.consume(this.logoff, queues.byKind.logoff, EVENT_SOURCES.logoff);

    // User-data worker: attaches, commits and discards users' data disks in the user-data store
    // on the datastore (qemu-img); a commit asks the replication worker to ship its delta.
    this.userDataWorker = new PristineFunction(this, "UserDataWorker", {
      name: "user-data-worker",
      stage: props.stage,
      environment: {
        ...tableEnv,
        PRISTINE_REGION_NAME: regionName(props.region),
        PRISTINE_USER_DATA_PATH: USER_DATA_MOUNT_PATH,
        PRISTINE_REPLICATION_QUEUE_URL: replicationQueue.queueUrl,
        ...peer.environment(),
      },
      ...onDatastore,
      layers,
    });
    grantTableReadWrite(table, this.userDataWorker.role);
    grantSend(replicationQueue, this.userDataWorker.role);
    this.consume(this.userDataWorker, queues.byKind["user-data"], EVENT_SOURCES["user-data-worker"]);

    // Replication worker: ships deltas, image versions and configuration into the peer's bucket
    // and queue; applies what the peer shipped here (user-data store and image store on the
    // datastore, qemu-img); runs drills and failovers, which place pools on this region's
    // datastores. It mounts the datastore, so it is in the VPC: the peer is reached through the
    // NAT gateway of pristine:natForReplication (see EfsDatastore).
    this.replicationWorker = new PristineFunction(this, "ReplicationWorker", {
      name: "replication-worker",
      stage: props.stage,
      environment: {
        ...tableEnv,
        ...queues.cloneJobsEnvironment(),
        ...datastoreEnv,
        PRISTINE_REGION_NAME: regionName(props.region),
        PRISTINE_DATA_DIR: DATASTORE_MOUNT_PATH,
        PRISTINE_DATASTORE_PATH: DATASTORE_MOUNT_PATH,
        PRISTINE_USER_DATA_PATH: USER_DATA_MOUNT_PATH,
        PRISTINE_USER_DATA_QUEUE_URL: userDataQueue.queueUrl,
        PRISTINE_REPLICATION_QUEUE_URL: replicationQueue.queueUrl,
        PRISTINE_REPLICATION_BUCKET: storage.replication.bucketName,
        // It samples (primary) and checks (DR) the DR readiness of a period.
        ...readinessEnvironment(),
        // Deltas and image versions stream in parts to the peer and straight onto the datastore
        // here, so nothing of a file's size is staged in /tmp: the default 512 MiB stays, and the
        // code refuses to stage more than it (a download without a destination).
        PRISTINE_TMP_LIMIT_MIB: String(REPLICATION_TMP_MIB),
        PRISTINE_UPLOAD_PART_SIZE_MIB: String(REPLICATION_PART_MIB),
        ...peer.environment(),
      },
      ...onDatastore,
      vpcSubnets: datastore.replicationSubnets,
      layers,
      ephemeralStorageMiB: REPLICATION_TMP_MIB,
    });
    grantTableReadWrite(table, this.replicationWorker.role);
    grantObjectRead(storage.replication.bucketArn, this.replicationWorker.role);
    grantObjectDelete(storage.replication.bucketArn, this.replicationWorker.role);
    peer.grantShipTo(this.replicationWorker.role);
    queues.grantSendCloneJobs(this.replicationWorker.fn);
    grantSend(userDataQueue, this.replicationWorker.role);
    grantSend(replicationQueue, this.replicationWorker.role);
    this.consume(this.replicationWorker, queues.byKind.replication, EVENT_SOURCES["replication-worker"]);

    // Reconciler: scheduled (see Events); repairs by enqueueing clone jobs (the datastore sweeps
    // among them) and, for sessions it ends, the user's data commit.
    this.reconciler = new PristineFunction(this, "Reconciler", {
      name: "reconciler",
      stage: props.stage,
      environment: {
        ...tableEnv,
        ...queues.cloneJobsEnvironment(),
        // The region's own datastore is swept too, registered or not.
        PRISTINE_DATASTORE_ID: props.datastoreSettings.id,
        PRISTINE_USER_DATA_QUEUE_URL: userDataQueue.queueUrl,
        // Re-ships user data changes whose replication messages were lost (it only enqueues).
        PRISTINE_REPLICATION_QUEUE_URL: replicationQueue.queueUrl,
        // Its second schedule starts the DR readiness checks of the period (it only enqueues).
        ...readinessEnvironment(),
        ...peer.environment(),
      },
    });
    grantTableReadWrite(table, this.reconciler.role);
    queues.grantSendCloneJobs(this.reconciler.fn);
    grantSend(replicationQueue, this.reconciler.role);
    grantSend(userDataQueue, this.reconciler.role);

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
