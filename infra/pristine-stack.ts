import { Annotations, CfnOutput, Fn, Stack, type StackProps } from "aws-cdk-lib";
import * as lambda from "aws-cdk-lib/aws-lambda";
import type { Construct } from "constructs";
import type { PristineConfig } from "./config.ts";
import { Api } from "./constructs/api.ts";
import { Data } from "./constructs/data.ts";
import { DATASTORE_MOUNT_PATH, EfsDatastore } from "./constructs/datastore.ts";
import { Events } from "./constructs/events.ts";
import { HostFleet } from "./constructs/host-fleet.ts";
import { HOST_DATASTORE_PATH } from "./constructs/host-setup.ts";
import type { PristineFunction } from "./constructs/lambda-function.ts";
import { Observability } from "./constructs/observability.ts";
import { PeerRegion } from "./constructs/peer.ts";
import { Queues } from "./constructs/queues.ts";
import { Storage } from "./constructs/storage.ts";
import { Workers } from "./constructs/workers.ts";
import { type FunctionName, type RegionRole, stackName } from "./names.ts";

export interface PristineStackProps extends StackProps {
  readonly config: PristineConfig;
  readonly role: RegionRole;
  /** Concrete region of this stack. */
  readonly region: string;
  /** The other region (the DR region of the primary, the primary of the DR region). */
  readonly peerRegion: string;
}

/**
 * One region's control plane: API, table, queues and workers, events, storage, alarms. The
 * primary and the DR region run the same stack; each knows its peer through `peerRegion` and the
 * deterministic names in names.ts.
 */
export class PristineStack extends Stack {
  readonly role: RegionRole;
  readonly peerRegion: string;
  readonly data: Data;
  readonly storage: Storage;
  readonly datastore: EfsDatastore;
  readonly queues: Queues;
  readonly api: Api;
  readonly workers: Workers;
  readonly events: Events;
  readonly observability: Observability;
  /** pristine:hostFleet, when it is on for this stack's region role. */
  readonly hostFleet: HostFleet | undefined;
  /** The peer region's replication bucket and queue, by derived name. */
  readonly peer: PeerRegion;
  /** Every function, by its folder under functions/. */
  readonly functions: Readonly<Record<FunctionName, PristineFunction>>;

  constructor(scope: Construct, id: string, props: PristineStackProps) {
    const { config, role, region, peerRegion, ...stackProps } = props;
    super(scope, id, {
      ...stackProps,
      stackName: stackName(config.stage, region),
      env: { account: config.account, region },
      description: `Pristine ${config.stage} control plane, ${role} region (peer: ${peerRegion})`,
      terminationProtection: stackProps.terminationProtection ?? config.stage === "prod",
    });
    this.role = role;
    this.peerRegion = peerRegion;
    const stage = config.stage;

    this.data = new Data(this, "Data", { stage });
    this.storage = new Storage(this, "Storage", { stage });
    this.peer = new PeerRegion(this, stage, peerRegion);
    this.datastore = new EfsDatastore(this, "Datastore", {
      stage,
      role: props.role,
      natForReplication: config.natForReplication,
    });
    this.queues = new Queues(this, "Queues", { stage, hostDatastores: config.datastore.hostDatastores });

    // qemu-img for the functions that run it: clone worker, api (publish), user-data and
    // replication workers (user-data disks and deltas).
    const qemuImgLayerArn = config.qemuImgLayerArns[region];
    const qemuImgLayer = qemuImgLayerArn
      ? lambda.LayerVersion.fromLayerVersionArn(this, "QemuImgLayer", qemuImgLayerArn)
      : undefined;

    this.api = new Api(this, "Api", {
      stage,
      role: props.role,
      region,
      peer: this.peer,
      table: this.data.table,
      queues: this.queues,
      operatorKeySha256: config.operatorKeySha256,
      datastoreSettings: config.datastore,
      settings: config.api,
      datastore: this.datastore,
      qemuImgLayer,
    });
    this.workers = new Workers(this, "Workers", {
      stage,
      region,
      peer: this.peer,
      table: this.data.table,
      queues: this.queues,
      storage: this.storage,
      datastore: this.datastore,
      datastoreSettings: config.datastore,
      qemuImgLayer,
    });
    this.events = new Events(this, "Events", {
      stage,
      logoffQueue: this.queues.byKind.logoff,
      reconciler: this.workers.reconciler.fn,
    });

    this.functions = {
      api: this.api.handler,
      authorizer: this.api.authorizer,
      "clone-worker": this.workers.cloneWorker,
      logoff: this.workers.logoff,
      reconciler: this.workers.reconciler,
      "replication-worker": this.workers.replicationWorker,
      "user-data-worker": this.workers.userDataWorker,
    };
    this.observability = new Observability(this, "Observability", {
      stage,
      functions: Object.values(this.functions),
      queues: this.queues.all(),
      httpApi: this.api.httpApi,
      alarmEmail: config.alarmEmail,
    });

    this.hostFleet = config.hostFleet?.regions.includes(role)
      ? new HostFleet(this, "HostFleet", {
          stage,
          region,
          settings: config.hostFleet,
          datastoreSettings: config.datastore,
          table: this.data.table,
          queues: this.queues,
          storage: this.storage,
          datastore: this.datastore,
          agentRoles: this.workers.agentRoles,
          alarmTopic: this.observability.topic,
        })
      : undefined;

    if (config.operatorKeyIsPlaceholder) {
      Annotations.of(this).addWarningV2(
        "pristine:operatorKeyPlaceholder",
        "pristine:operatorKeySha256 is the placeholder: no operator key is accepted until it is set " +
          "(see docs/deploy.md).",
      );
    }
    if (!config.qemuImgLayerArns[props.region]) {
      Annotations.of(this).addWarningV2(
        "pristine:noQemuImgLayer",
        `No pristine:qemuImgLayerArns entry for ${props.region}: the clone, user-data and replication ` +
          "worker Lambdas have no qemu-img binary (see docs/deploy.md).",
      );
    }
    if (!config.natForReplication) {
      Annotations.of(this).addWarningV2(
        "pristine:noNatForReplication",
        `pristine:natForReplication is off: the replication worker of ${props.region} runs in isolated ` +
          `subnets and cannot reach ${peerRegion}'s bucket and queue, so nothing is replicated to the ` +
          "peer (see docs/deploy.md).",
      );
    }

    this.outputs(config);
  }

  /**
   * Availability zones without a context lookup: Fn::GetAZs, resolved by CloudFormation at
   * deploy time. With a concrete account, the default would ask AWS during synthesis.
   */
  override get availabilityZones(): string[] {
    return [Fn.select(0, Fn.getAzs()), Fn.select(1, Fn.getAzs())];
  }

  private outputs(config: PristineConfig): void {
    const out = (id: string, value: string, description: string) =>
      new CfnOutput(this, id, { value, description });
    out("RegionRole", this.role, "primary or dr");
    out("PeerRegion", this.peerRegion, "The other region of this deployment");
    out("ApiUrl", this.api.url, "Invoke URL of the HTTP API");
    out("TableName", this.data.table.tableName, "DynamoDB table (PRISTINE_TABLE_NAME)");
    for (const [kind, workQueue] of Object.entries(this.queues.byKind)) {
      const name = kind.replace(/(^|-)(\w)/g, (_m, _dash, c: string) => c.toUpperCase());
      out(`${name}QueueUrl`, workQueue.queue.queueUrl, `The ${kind} queue`);
    }
    out(
      "ImageBucket",
      this.storage.images.bucketName,
      "Image store bucket (the hosts fetch the guest's boot files from guest/)",
    );
    out(
      "ReplicationBucket",
      this.storage.replication.bucketName,
      "What the peer ships here (PRISTINE_REPLICATION_BUCKET)",
    );
    out("PeerReplicationBucket", this.peer.bucketName, "The peer region's replication bucket");
    out("PeerReplicationQueueUrl", this.peer.replicationQueueUrl, "The peer region's replication queue");
    out("AlarmTopicArn", this.observability.topic.topicArn, "SNS topic of all alarms");
    out(
      "DatastoreRegistration",
      Stack.of(this).toJsonString({
        datastoreId: config.datastore.id,
        path: DATASTORE_MOUNT_PATH,
        capacityGiB: config.datastore.capacityGiB,
        overcommit: config.datastore.overcommit,
      }),
      "Body for POST /v1/admin/datastores to register this region's EFS datastore (DESIGN.md section 4)",
    );
    out("DatastoreFileSystemId", this.datastore.fileSystem.fileSystemId, "EFS file system of the datastore");
    out(
      "DatastoreAccessPointId",
      this.datastore.accessPoint.accessPointId,
      "EFS access point the clone worker mounts",
    );
    for (const [datastoreId, workQueue] of this.queues.hostDatastores) {
      const suffix = datastoreId.replace(/[^A-Za-z0-9]/g, "");
      out(`Agent${suffix}QueueUrl`, workQueue.queue.queueUrl, `Queue the agent of ${datastoreId} polls`);
      const role = this.workers.agentRoles.get(datastoreId);
      if (role) out(`Agent${suffix}RoleArn`, role.roleArn, `Role the agent of ${datastoreId} assumes`);
    }
    for (const [hostId, host] of this.hostFleet?.hosts ?? []) {
      const suffix = hostId.replace(/[^A-Za-z0-9]/g, "");
      out(`Host${suffix}InstanceId`, host.instance.instanceId, `EC2 instance of host ${hostId} (SSM target)`);
      const storage = config.hostFleet?.storage;
      if (storage?.kind === "gp3") {
        out(
          `Host${suffix}DatastoreRegistration`,
          Stack.of(this).toJsonString({
            datastoreId: hostId,
            hostId,
            path: HOST_DATASTORE_PATH,
            capacityGiB: storage.sizeGiB,
            overcommit: config.datastore.overcommit,
          }),
          `Body for POST /v1/admin/datastores to register host ${hostId}'s datastore`,
        );
      }
    }
  }
}
