import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  Annotations,
  AssetHashType,
  BundlingOutput,
  DockerImage,
  Duration,
  Stack,
  Tags,
  Validations,
} from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cwActions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import { Asset } from "aws-cdk-lib/aws-s3-assets";
import type * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";
import { buildSync } from "esbuild";
import type { DatastoreSettings, HostFleetSettings, HostStorage } from "../config.ts";
import { regionName } from "../names.ts";
import type { EfsDatastore } from "./datastore.ts";
import { LOGOFF_EVENT } from "./events.ts";
import { REPO_ROOT } from "./lambda-function.ts";
import { grantSend, type Queues } from "./queues.ts";
import type { Storage } from "./storage.ts";

/** The end of every here-document in the user data (quoted: nothing in them is expanded). */
const HEREDOC_END = "PRISTINE_EOF";

/** The host's data disk (datastore volume or instance store) is mounted here. */
export const HOST_DATA_DIR = "/var/lib/pristine";
/** PRISTINE_DATASTORE_PATH of a fleet host: the host-local datastore, on the data disk. */
export const HOST_DATASTORE_PATH = `${HOST_DATA_DIR}/datastore`;
/** Boot files of the desktop guest (PRISTINE_GUEST_KERNEL, PRISTINE_GUEST_INITRD). */
export const HOST_GUEST_DIR = `${HOST_DATA_DIR}/guest`;
/** PRISTINE_VM_RUN_DIR: QMP sockets and pid files of the running VMs (systemd RuntimeDirectory). */
export const HOST_VM_RUN_DIR = "/run/pristine/vms";
/** The agent's systemd unit. */
export const AGENT_SERVICE = "pristine-agent.service";
/** Where the guest boot files are fetched from, in the region's image store bucket. */
export const GUEST_BOOT_FILES_PREFIX = "guest/";
/** The bus the agents put Session Logoff events on: the default bus, where the logoff rule is. */
export const HOST_EVENT_BUS_NAME = "default";
/** Canonical's public SSM parameter of the current Ubuntu 24.04 LTS amd64 AMI. */
export const UBUNTU_AMI_PARAMETER =
  "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id";

/** The Node.js version the hosts run: the `node` dev dependency the tests run on. */
export function hostNodeVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as {
    devDependencies?: Record<string, string>;
  };
  const version = pkg.devDependencies?.node ?? "";
  if (!/^\d+\.\d+\.\d+$/.test(version)) {
    throw new Error(
      `package.json devDependencies.node must be an exact version, got ${JSON.stringify(version)}`,
    );
  }
  return version;
}

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
        ...queues.cloneJobsEnvironment(),
        // The agent polls its own datastore's queue.
        PRISTINE_CLONE_JOBS_QUEUE_URL: workQueue.queue.queueUrl,
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
        "replaces them (blank datastores). Pin an AMI id for production (see Deploy to AWS in README.md).",
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
    // Relay the desktops' Session Logoff events to the default bus, where the logoff rule is;
    // nothing else may be put there.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "PutSessionLogoffEvents",
        actions: ["events:PutEvents"],
        resources: [
          stack.formatArn({ service: "events", resource: "event-bus", resourceName: HOST_EVENT_BUS_NAME }),
        ],
        conditions: {
          StringEquals: {
            "events:source": [LOGOFF_EVENT.source],
            "events:detail-type": [LOGOFF_EVENT.detailType],
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

/**
 * The agent as one ES module, bundled with esbuild (the same options as the Lambda bundles) at
 * synth time, offline: no node_modules on the host, and the asset's hash (so the user data)
 * changes only when the agent's code does. Skipped like every bundle when the stack is not
 * bundled (`aws:cdk:bundling-stacks`).
 */
function agentBundleAsset(scope: Construct, id: string): Asset {
  return new Asset(scope, id, {
    path: REPO_ROOT,
    assetHashType: AssetHashType.OUTPUT,
    bundling: {
      // Never used: local bundling always succeeds or throws.
      image: DockerImage.fromRegistry("pristine-agent-bundling-is-local"),
      outputType: BundlingOutput.SINGLE_FILE,
      local: {
        tryBundle(outputDir: string): boolean {
          buildSync({
            absWorkingDir: REPO_ROOT,
            entryPoints: [path.join(REPO_ROOT, "local", "agent.ts")],
            outfile: path.join(outputDir, "agent.mjs"),
            bundle: true,
            platform: "node",
            format: "esm",
            target: "node24",
            mainFields: ["module", "main"],
            minify: true,
            sourcemap: "inline",
            sourcesContent: false,
            tsconfig: path.join(REPO_ROOT, "tsconfig.json"),
            banner: {
              js:
                "import { createRequire as __pristineCreateRequire } from 'node:module'; " +
                "const require = __pristineCreateRequire(import.meta.url);",
            },
            logLevel: "warning",
          });
          return true;
        },
      },
    },
  });
}

export interface HostUserDataOptions {
  readonly hostId: string;
  readonly region: string;
  readonly storage: HostStorage;
  readonly nodeVersion: string;
  readonly agentBundle: Asset;
  readonly imagesBucketName: string;
  readonly environment: Readonly<Record<string, string>>;
}

/** The shell scripts the hosts run, beside this file's folder: infra/host/. */
const HOST_SCRIPTS_DIR = fileURLToPath(new URL("../host/", import.meta.url));

/** Lines that write one of infra/host/*.sh to `target` on the host. */
function installScript(target: string, file: string): string[] {
  const text = readFileSync(path.join(HOST_SCRIPTS_DIR, file), "utf8").trimEnd();
  if (text.includes(HEREDOC_END)) throw new Error(`${file} must not contain ${HEREDOC_END}`);
  return [`cat >${target} <<'${HEREDOC_END}'`, text, HEREDOC_END, `chmod 0755 ${target}`];
}

/** A value in single quotes for systemd's EnvironmentFile (JSON keeps its double quotes). */
function envFileLine(key: string, value: string): string {
  if (!/^[A-Z_][A-Z0-9_]*$/.test(key)) throw new Error(`bad variable name ${key}`);
  if (!value.includes("${Token[") && value.includes("'")) throw new Error(`${key}: no single quotes`);
  return `${key}='${value}'`;
}

/**
 * The host's user data: a cloud-config part that makes cloud-init run the shell part on every
 * boot (not only the first), and the shell part, which is idempotent. It installs QEMU/KVM and
 * Node.js (first boot), mounts the data disk, fetches the agent bundle, writes the agent's
 * environment and systemd units, and (re)starts the agent. Because it runs on every boot, the
 * restart that a changed user data causes (a new agent bundle) applies the change.
 */
export function hostUserData(options: HostUserDataOptions): ec2.UserData {
  const { hostId, region, storage, nodeVersion, agentBundle } = options;
  const envFile = Object.entries(options.environment).map(([k, v]) => envFileLine(k, v));
  const shell = ec2.UserData.forLinux();
  shell.addCommands(
    "set -euo pipefail",
    "exec >>/var/log/pristine-host-setup.log 2>&1",
    `echo "pristine host ${hostId}: setup at $(date -Is)"`,
    "export DEBIAN_FRONTEND=noninteractive",
    `NODE_VERSION='${nodeVersion}'`,
    "",
    "# QEMU/KVM and tools (first boot).",
    "if ! command -v qemu-system-x86_64 >/dev/null || ! command -v qemu-img >/dev/null; then",
    "  apt-get -o DPkg::Lock::Timeout=600 update -q",
    "  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \\",
    "    qemu-system-x86 qemu-utils mdadm e2fsprogs xz-utils curl ca-certificates",
    "fi",
    "# The AWS CLI (Ubuntu 24.04 packages it as a snap only).",
    "[ -x /snap/bin/aws ] || { snap wait system seed.loaded; snap install aws-cli --classic; }",
    "",
    "# Node.js, the version the project is tested on: the official build, checked against its release's SHASUMS256.txt.",
    'if [ "$(/opt/node/bin/node --version 2>/dev/null || true)" != "v$NODE_VERSION" ]; then',
    '  tmp=$(mktemp -d); tarball="node-v$NODE_VERSION-linux-x64.tar.xz"',
    '  curl -fsSL -o "$tmp/$tarball" "https://nodejs.org/dist/v$NODE_VERSION/$tarball"',
    '  curl -fsSL -o "$tmp/SHASUMS256.txt" "https://nodejs.org/dist/v$NODE_VERSION/SHASUMS256.txt"',
    '  (cd "$tmp" && grep " $tarball\\$" SHASUMS256.txt | sha256sum -c -)',
    '  rm -rf /opt/node && mkdir -p /opt/node && tar -xJf "$tmp/$tarball" -C /opt/node --strip-components=1',
    '  rm -rf "$tmp"',
    "fi",
    "",
    "# The agent's user: may use /dev/kvm, owns the data disk.",
    `id pristine >/dev/null 2>&1 || useradd --system --home-dir ${HOST_DATA_DIR} --no-create-home --shell /usr/sbin/nologin --groups kvm pristine`,
    "install -d -m 0755 /opt/pristine /etc/pristine",
    "",
    "# Helpers of the units below (infra/host/*.sh).",
    ...installScript("/usr/local/sbin/pristine-data-disk", "pristine-data-disk.sh"),
    ...installScript("/usr/local/sbin/pristine-guest-files", "pristine-guest-files.sh"),
    "",
    "# The agent bundle of this deployment.",
    `/snap/bin/aws s3 cp --only-show-errors --region ${region} "s3://${agentBundle.s3BucketName}/${agentBundle.s3ObjectKey}" /opt/pristine/agent.mjs.new`,
    "mv /opt/pristine/agent.mjs.new /opt/pristine/agent.mjs",
    "",
    "# The agent's environment.",
    `cat >/etc/pristine/agent.env <<'${HEREDOC_END}'`,
    ...envFile,
    HEREDOC_END,
    "chmod 0644 /etc/pristine/agent.env",
    "",
    `cat >/etc/systemd/system/pristine-data-disk.service <<'${HEREDOC_END}'`,
    "[Unit]",
    `Description=Pristine data disk on ${HOST_DATA_DIR}`,
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=/usr/local/sbin/pristine-data-disk ${storage.kind}`,
    "[Install]",
    "WantedBy=multi-user.target",
    HEREDOC_END,
    `cat >/etc/systemd/system/${AGENT_SERVICE} <<'${HEREDOC_END}'`,
    "[Unit]",
    `Description=Pristine host agent ${hostId} (QEMU/KVM, datastore ${HOST_DATASTORE_PATH})`,
    "Requires=pristine-data-disk.service",
    "After=pristine-data-disk.service network-online.target",
    "Wants=network-online.target",
    "[Service]",
    "User=pristine",
    "Group=pristine",
    "SupplementaryGroups=kvm",
    "EnvironmentFile=/etc/pristine/agent.env",
    `WorkingDirectory=${HOST_DATA_DIR}`,
    `RuntimeDirectory=${HOST_VM_RUN_DIR.replace(/^\/run\//, "")}`,
    `ExecStartPre=/usr/bin/mountpoint -q ${HOST_DATA_DIR}`,
    `ExecStartPre=-+/usr/local/sbin/pristine-guest-files s3://${options.imagesBucketName}/${GUEST_BOOT_FILES_PREFIX} ${region}`,
    "ExecStart=/opt/node/bin/node /opt/pristine/agent.mjs --workers host",
    "Restart=always",
    "RestartSec=5",
    "# SIGTERM to the agent only: it stops its VMs itself; what is left is killed after the timeout.",
    "KillMode=mixed",
    "TimeoutStopSec=180",
    "NoNewPrivileges=yes",
    "ProtectSystem=full",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "[Install]",
    "WantedBy=multi-user.target",
    HEREDOC_END,
    "systemctl daemon-reload",
    `systemctl enable pristine-data-disk.service ${AGENT_SERVICE}`,
    "# Enabled, so it starts on every boot even when this script fails; restarted here so that it runs the",
    "# bundle and environment just written (--no-block: do not wait for it inside cloud-init).",
    `systemctl restart --no-block ${AGENT_SERVICE}`,
    `echo "pristine host ${hostId}: setup done"`,
  );

  const userData = new ec2.MultipartUserData();
  userData.addPart(
    ec2.MultipartBody.fromRawBody({
      contentType: 'text/cloud-config; charset="utf-8"',
      body: ["#cloud-config", "cloud_final_modules:", "  - [scripts-user, always]", ""].join("\n"),
    }),
  );
  userData.addUserDataPart(shell, ec2.MultipartBody.SHELL_SCRIPT, true);
  return userData;
}
