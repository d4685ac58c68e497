import { Annotations, RemovalPolicy } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as efs from "aws-cdk-lib/aws-efs";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import type { DatastoreSettings } from "../config.ts";
import type { RegionRole } from "../names.ts";

/** Where the clone worker Lambda sees the datastore (PRISTINE_DATASTORE_PATH). */
export const DATASTORE_MOUNT_PATH = "/mnt/datastore";

/** The POSIX identity the clone worker uses on the file system (through the access point). */
const DATASTORE_UID = "1000";
const DATASTORE_GID = "1000";

/** Where the user-data store lives on the datastore (PRISTINE_USER_DATA_PATH). */
export const USER_DATA_MOUNT_PATH = `${DATASTORE_MOUNT_PATH}/userdata`;

export interface EfsDatastoreProps {
  readonly stage: string;
  readonly role: RegionRole;
  /**
   * pristine:natForReplication: add public subnets, one NAT gateway and private subnets with
   * egress, where the replication worker runs, so it reaches the peer region's S3 and SQS.
   */
  readonly natForReplication: boolean;
}

/**
 * The shared-filesystem datastore reachable from Lambda: an encrypted EFS file system in a VPC of
 * its own, and an access point that the clone worker mounts at /mnt/datastore.
 *
 * By default the VPC has isolated subnets only (no NAT gateway, no internet gateway). Its
 * functions reach this region's DynamoDB and S3 through gateway endpoints and SQS through an
 * interface endpoint (private DNS: only this region's SQS host name resolves to it). Only the
 * replication worker needs another region (the peer's bucket and queue); with natForReplication
 * it runs in private subnets behind one NAT gateway. The
 * VPC is created, never looked up, and its availability zones come from Fn::GetAZs (see
 * PristineStack.availabilityZones), so synthesis needs no AWS credentials.
 */
export class EfsDatastore extends Construct {
  readonly vpc: ec2.Vpc;
  readonly subnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
  /**
   * Subnets of the replication worker: private with a route to the NAT gateway when
   * natForReplication is set, else the isolated subnets (and the peer region is out of reach).
   */
  readonly replicationSubnets: ec2.SubnetSelection;
  readonly natForReplication: boolean;
  readonly fileSystem: efs.FileSystem;
  readonly accessPoint: efs.AccessPoint;
  /** Security group of the functions that mount the datastore. */
  readonly clientSecurityGroup: ec2.SecurityGroup;
  /**
   * The SQS interface endpoint. Its private DNS name is this region's SQS host name for the whole
   * VPC, so anything else in the VPC that calls SQS (the host fleet) must be let in too.
   */
  readonly sqsEndpoint: ec2.InterfaceVpcEndpoint;

  constructor(scope: Construct, id: string, props: EfsDatastoreProps) {
    super(scope, id);
    this.natForReplication = props.natForReplication;
    const egressSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
    this.replicationSubnets = props.natForReplication ? egressSubnets : this.subnets;
    const endpointSubnets = props.natForReplication ? [this.subnets, egressSubnets] : [this.subnets];

    const flowLogs = new logs.LogGroup(this, "FlowLogs", {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.vpc = new ec2.Vpc(this, "Vpc", {
      // Distinct ranges per region, so the two VPCs can be peered later if ever needed.
      ipAddresses: ec2.IpAddresses.cidr(props.role === "primary" ? "10.80.0.0/16" : "10.81.0.0/16"),
      maxAzs: 2,
      // The isolated subnets come first, so their ranges do not move when the flag is turned on.
      natGateways: props.natForReplication ? 1 : 0,
      subnetConfiguration: [
        { name: "datastore", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 22 },
        ...(props.natForReplication
          ? [
              { name: "replication", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 24 },
              { name: "nat", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 26 },
            ]
          : []),
      ],
      // This region's DynamoDB and S3 stay on the gateway endpoints (the peer's S3 goes via NAT).
      gatewayEndpoints: {
        DynamoDb: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets: endpointSubnets },
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3, subnets: endpointSubnets },
      },
      flowLogs: {
        All: {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
          trafficType: ec2.FlowLogTrafficType.ALL,
        },
      },
    });
    this.clientSecurityGroup = new ec2.SecurityGroup(this, "ClientSecurityGroup", {
      vpc: this.vpc,
      description: `pristine-${props.stage} functions that mount the EFS datastore`,
      // Egress must reach the S3 and DynamoDB gateway endpoints, whose prefix-list ids would need
      // a lookup; the subnets have no route to the internet anyway.
      allowAllOutbound: true,
    });
    Annotations.of(this.clientSecurityGroup).acknowledgeWarning(
      "@aws-cdk/aws-ec2:ipv4IgnoreEgressRule",
      "All outbound traffic is allowed on purpose (see above); the per-peer egress rules are redundant.",
    );

    // Only the datastore's clients may use the SQS endpoint (not the whole VPC range).
    this.sqsEndpoint = this.vpc.addInterfaceEndpoint("Sqs", {
      service: ec2.InterfaceVpcEndpointAwsService.SQS,
      subnets: this.subnets,
      privateDnsEnabled: true,
      open: false,
    });
    this.sqsEndpoint.connections.allowDefaultPortFrom(
      this.clientSecurityGroup,
      "HTTPS from the datastore's clients",
    );

    this.fileSystem = new efs.FileSystem(this, "FileSystem", {
      fileSystemName: `pristine-${props.stage}-datastore`,
      vpc: this.vpc,
      vpcSubnets: this.subnets,
      encrypted: true,
      performanceMode: efs.PerformanceMode.GENERAL_PURPOSE,
      throughputMode: efs.ThroughputMode.ELASTIC,
      // Replicas are read by every clone on each boot: keep them out of infrequent access.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // Refuse NFS clients that do not use TLS (Lambda always mounts with TLS).
    this.fileSystem.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "DenyUnencryptedTransport",
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: [
          "elasticfilesystem:ClientMount",
          "elasticfilesystem:ClientWrite",
          "elasticfilesystem:ClientRootAccess",
        ],
        resources: ["*"],
        conditions: { Bool: { "aws:SecureTransport": "false" } },
      }),
    );

    this.accessPoint = this.fileSystem.addAccessPoint("AccessPoint", {
      path: "/datastore",
      createAcl: { ownerUid: DATASTORE_UID, ownerGid: DATASTORE_GID, permissions: "750" },
      posixUser: { uid: DATASTORE_UID, gid: DATASTORE_GID },
    });
  }

  /** The Lambda file system configuration: the access point at /mnt/datastore. */
  lambdaFileSystem(): lambda.FileSystem {
    return lambda.FileSystem.fromEfsAccessPoint(this.accessPoint, DATASTORE_MOUNT_PATH);
  }
}

/** The EFS datastore as the code's default datastore (shared/config.ts defaultDatastore). */
export function datastoreEnvironment(settings: DatastoreSettings): Record<string, string> {
  return {
    PRISTINE_DATASTORE_ID: settings.id,
    PRISTINE_DATASTORE_CAPACITY_GIB: String(settings.capacityGiB),
    PRISTINE_DATASTORE_OVERCOMMIT: String(settings.overcommit),
  };
}
