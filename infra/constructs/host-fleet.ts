import { Annotations, Duration, Stack, Tags, Validations } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cwActions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import type { Asset } from "aws-cdk-lib/aws-s3-assets";
import type * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";
import type { DatastoreSettings, HostFleetSettings, HostStorage } from "../config.ts";
import { regionName } from "../names.ts";
import type { EfsDatastore } from "./datastore.ts";
import { DESKTOP_EVENTS } from "./events.ts";
import {
  agentBundleAsset,
  HOST_DATA_DIR,
  HOST_DATASTORE_PATH,
  HOST_EVENT_BUS_NAME,
  HOST_GUEST_DIR,
  HOST_VM_RUN_DIR,
  hostNodeVersion,
  hostUserData,
  UBUNTU_AMI_PARAMETER,
} from "./host-setup.ts";
import { grantSend, type Queues } from "./queues.ts";
import type { Storage } from "./storage.ts";

export interface HostFleetProps {
  readonly stage: string;
  /** The concrete region of the stack. */
  readonly region: string;
  readonly settings: HostFleetSettings;
  readonly datastoreSettings: DatastoreSettings;
  readonly table: dynamodb.Table;
  readonly queues: Queues;
  readonly storage: Storage;
  readonly datastore: EfsDatastore;
  /** Host datastore id -> its agent's role (Workers.agentRoles): the hosts' instance profiles use them. */
  readonly agentRoles: ReadonlyMap<string, iam.Role>;
  readonly alarmTopic: sns.ITopic;
}

export interface FleetHost {
  readonly hostId: string;
  readonly instance: ec2.Instance;
  readonly role: iam.Role;
  /** The environment of the agent's systemd unit. */
  readonly environment: Readonly<Record<string, string>>;
}

/**
 * pristine:hostFleet: one EC2 bare-metal instance per configured host datastore, running the host
 * agent (`local/agent.ts --workers host`, bundled by esbuild) under systemd with QEMU/KVM, on the
 * host's own data disk. Each instance profile carries the datastore's existing agent role.
 *
 * A plain instance rather than an Auto Scaling group of one: a host is not cattle. Its id is its
 * datastore's id, its disk holds that datastore's replicas and desktops, and the table records
 * them there; a replacement instance would come up with a blank disk under the same id. A stopped,
 * restarted or (where the type supports simplified automatic recovery) recovered instance keeps
 * its id and its EBS volumes. A failed status check raises an alarm.
 */
export class HostFleet extends Construct {
  readonly securityGroup: ec2.SecurityGroup;
  /** The agent, bundled into one ES module (agent.mjs), shared by the hosts of the stack. */
  readonly agentBundle: Asset;
  readonly hosts: ReadonlyMap<string, FleetHost>;

  constructor(scope: Construct, id: string, props: HostFleetProps) {
    super(scope, id);
    const { settings, datastore, queues, stage } = props;

    this.securityGroup = new ec2.SecurityGroup(this, "SecurityGroup", {
      vpc: datastore.vpc,
      description: `pristine-${stage} host agents: no inbound; outbound to AWS APIs and package mirrors`,
      // Package mirrors, nodejs.org, SSM, EventBridge (via the NAT gateway), DynamoDB and S3
      // (gateway endpoints, whose prefix lists would need a lookup) and SQS (interface endpoint).
      allowAllOutbound: true,
    });
    // The SQS endpoint's private DNS answers for the whole VPC: let the hosts through it.
    datastore.sqsEndpoint.connections.allowDefaultPortFrom(this.securityGroup, "HTTPS from the host agents");

    this.agentBundle = agentBundleAsset(this, "AgentBundle");

    const subnets = datastore.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }).subnets;
    const machineImage = this.machineImage(props);
    const hosts = new Map<string, FleetHost>();
    settings.hosts.forEach((hostId, index) => {
      const role = props.agentRoles.get(hostId);
      const workQueue = queues.hostDatastores.get(hostId);
      if (!role || !workQueue) throw new Error(`host ${hostId} has no agent role or queue`);
      const subnet = subnets[index % subnets.length];
      if (!subnet) throw new Error("the host fleet needs private subnets with egress");

      this.grantHost(role, props);
      const environment: Record<string, string> = {
        AWS_REGION: props.region,
        PRISTINE_REGION_NAME: regionName(props.region),
        PRISTINE_TABLE_NAME: props.table.tableName,
        // The agent polls its own datastore's queue (PRISTINE_DATASTORE_QUEUE_URLS[hostId]); jobs of
        // no datastore go to the regional clone-jobs queue, as from any producer.
        ...queues.cloneJobsEnvironment(),
        PRISTINE_USER_DATA_QUEUE_URL: queues.byKind["user-data"].queue.queueUrl,
        PRISTINE_REPLICATION_QUEUE_URL: queues.byKind.replication.queue.queueUrl,
        PRISTINE_DATA_DIR: HOST_DATA_DIR,
        PRISTINE_DATASTORE_ID: hostId,
        PRISTINE_DATASTORE_PATH: HOST_DATASTORE_PATH,
        ...(settings.storage.kind === "gp3"
          ? { PRISTINE_DATASTORE_CAPACITY_GIB: String(settings.storage.sizeGiB) }
          : {}),
        PRISTINE_DATASTORE_OVERCOMMIT: String(props.datastoreSettings.overcommit),
        PRISTINE_HOST_ID: hostId,
        PRISTINE_HYPERVISOR: "qemu",
        PRISTINE_EVENT_BUS_NAME: HOST_EVENT_BUS_NAME,
        PRISTINE_VM_RUN_DIR: HOST_VM_RUN_DIR,
        PRISTINE_GUEST_KERNEL: `${HOST_GUEST_DIR}/vmlinuz`,
        PRISTINE_GUEST_INITRD: `${HOST_GUEST_DIR}/initrd.img`,
        POWERTOOLS_SERVICE_NAME: `pristine-agent-${hostId}`,
        NODE_OPTIONS: "--enable-source-maps",
      };

      const instance = new ec2.Instance(this, `Host-${hostId}`, {
        vpc: datastore.vpc,
        vpcSubnets: { subnets: [subnet] },
        instanceType: new ec2.InstanceType(settings.instanceType),
        machineImage,
        role,
        securityGroup: this.securityGroup,
        keyPair: settings.keyName
          ? ec2.KeyPair.fromKeyPairName(this, `Key-${hostId}`, settings.keyName)
          : undefined,
        userData: hostUserData({
          hostId,
          region: props.region,
          storage: settings.storage,
          nodeVersion: hostNodeVersion(),
          agentBundle: this.agentBundle,
          imagesBucketName: props.storage.images.bucketName,
          environment,
        }),
        // A changed user data (a new agent bundle) restarts the instance; cloud-init runs it on every
        // boot (see hostUserData), so the restart applies it. Replacing would blank the datastore.
        userDataCausesReplacement: false,
        httpTokens: ec2.HttpTokens.REQUIRED,
        httpPutResponseHopLimit: 1,
        detailedMonitoring: true,
        disableApiTermination: stage === "prod",
        blockDevices: blockDevices(settings.storage),
        propagateTagsToVolumeOnCreation: true,
      });
      // The role's policies (the agent bundle) must be in place when the instance first boots.
      instance.node.addDependency(role);
      Tags.of(instance).add("Name", `pristine-${stage}-host-${hostId}`);
      Tags.of(instance).add("pristine:host-id", hostId);
      Validations.of(instance).acknowledge({
        id: "AwsSolutions-EC29",
        reason:
          "API termination protection is on for the prod stage only (as stack termination protection is): " +
          "other stages' hosts must be deletable with their stack. A host is a single instance, not in an " +
          "Auto Scaling group, on purpose (its datastore lives on its disk; see HostFleet).",
      });
      if (settings.amiIds[props.region]) {
        Validations.of(instance).acknowledge({
          id: "CloudFormation-Validate::W9010",
          reason:
            "The AMI id is pinned on purpose, per region, in pristine:hostFleet.amiIds: a host must not be " +
            "replaced (its datastore is on its disk) whenever a newer AMI appears under a parameter.",
        });
      }
      this.statusAlarm(hostId, instance, props);
      hosts.set(hostId, { hostId, instance, role, environment });
    });
    this.hosts = hosts;
  }

  private machineImage(props: HostFleetProps): ec2.IMachineImage {
    const pinned = props.settings.amiIds[props.region];
    if (pinned) return ec2.MachineImage.genericLinux({ [props.region]: pinned });
    Annotations.of(this).addWarningV2(
      "pristine:hostAmiNotPinned",
      `No pristine:hostFleet.amiIds entry for ${props.region}: the hosts run the Ubuntu 24.04 AMI that ` +
        `${UBUNTU_AMI_PARAMETER} names at deploy time, and a deploy after Canonical publishes a new one ` +
        "replaces them (blank datastores). Pin an AMI id for production (see docs/deploy.md).",
    );
    return ec2.MachineImage.fromSsmParameter(UBUNTU_AMI_PARAMETER, { os: ec2.OperatingSystemType.LINUX });
  }

  /** What the instance needs beyond the agent role's own grants (Workers). */
  private grantHost(role: iam.Role, props: HostFleetProps): void {
    const stack = Stack.of(this);
    // The role becomes the instance profile's.
    role.assumeRolePolicy?.addStatements(
      new iam.PolicyStatement({
        actions: ["sts:AssumeRole"],
        principals: [new iam.ServicePrincipal("ec2.amazonaws.com")],
      }),
    );
    // Session Manager (shell and port forwarding without SSH or inbound rules), Run Command.
    role.addManagedPolicy(iam.ManagedPolicy.fromAwsManagedPolicyName("AmazonSSMManagedInstanceCore"));
    Validations.of(role).acknowledge({
      id: "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]",
      reason:
        "The fleet hosts are reached with SSM Session Manager instead of SSH and inbound rules. " +
        "AmazonSSMManagedInstanceCore is the AWS-maintained minimum for the SSM agent (most of its ssm, " +
        "ssmmessages and ec2messages calls have no resource-level permissions), and AWS keeps it current " +
        "as the agent changes.",
    });
    // Relay the desktops' session events (logoff, disconnect, reconnect, idle) to the default bus,
    // where the rule that routes them is; nothing else may be put there.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "PutSessionLogoffEvents",
        actions: ["events:PutEvents"],
        resources: [
          stack.formatArn({ service: "events", resource: "event-bus", resourceName: HOST_EVENT_BUS_NAME }),
        ],
        conditions: {
          StringEquals: {
            "events:source": [DESKTOP_EVENTS.source],
            "events:detail-type": [...DESKTOP_EVENTS.detailTypes],
          },
        },
      }),
    );
    // The agent runs the clone worker's handler and owns its desktops' user data, as the
    // functions that send there do: it gets their URLs, so it may send (only send) there.
    grantSend(props.queues.byKind.replication.queue, role);
    grantSend(props.queues.byKind["user-data"].queue, role);
    // Fetch the agent bundle (this one object; the bootstrap bucket holds other stacks' assets).
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "GetAgentBundle",
        actions: ["s3:GetObject"],
        resources: [
          stack.formatArn({
            service: "s3",
            region: "",
            account: "",
            resource: this.agentBundle.s3BucketName,
            resourceName: this.agentBundle.s3ObjectKey,
          }),
        ],
      }),
    );
  }

  private statusAlarm(hostId: string, instance: ec2.Instance, props: HostFleetProps): void {
    const alarm = new cloudwatch.Alarm(this, `StatusCheck-${hostId}`, {
      alarmName: `pristine-${props.stage}-host-${hostId}-status-check`,
      alarmDescription:
        `Host ${hostId} (${props.settings.instanceType}) failed an EC2 status check: its desktops are ` +
        "likely unreachable.",
      metric: new cloudwatch.Metric({
        namespace: "AWS/EC2",
        metricName: "StatusCheckFailed",
        dimensionsMap: { InstanceId: instance.instanceId },
        period: Duration.minutes(1),
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: 0,
      evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      // No data while the instance boots (minutes, on metal) or is stopped on purpose.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new cwActions.SnsAction(props.alarmTopic));
    alarm.addOkAction(new cwActions.SnsAction(props.alarmTopic));
  }
}

/** The root volume, and the datastore's gp3 volume unless the datastore is on the instance store. */
function blockDevices(storage: HostStorage): ec2.BlockDevice[] {
  const devices: ec2.BlockDevice[] = [
    {
      deviceName: "/dev/sda1",
      volume: ec2.BlockDeviceVolume.ebs(30, { volumeType: ec2.EbsDeviceVolumeType.GP3, encrypted: true }),
    },
  ];
  if (storage.kind === "gp3") {
    devices.push({
      deviceName: "/dev/sdf",
      volume: ec2.BlockDeviceVolume.ebs(storage.sizeGiB, {
        volumeType: ec2.EbsDeviceVolumeType.GP3,
        iops: storage.iops,
        encrypted: true,
        // Replicas and desktops can be made again; a volume left behind would only cost money.
        deleteOnTermination: true,
      }),
    });
  }
  return devices;
}
