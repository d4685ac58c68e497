import { ArnFormat, Stack } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type { IConstruct } from "constructs";
import { bucketName, queueName, queueUrl, regionName, tableName } from "../names.ts";
import { grantObjectWrite } from "./storage.ts";

/**
 * The peer region as this stack knows it: the names, URL and ARNs of its replication bucket and
 * replication queue, derived from stage, account and the peer's region with names.ts (the same
 * functions the peer's own stack names them with). Nothing is looked up or copied by hand.
 */
export class PeerRegion {
  /** PRISTINE_PEER_REGION_NAME: the peer's PRISTINE_REGION_NAME. */
  readonly name: string;
  /** PRISTINE_PEER_AWS_REGION. */
  readonly awsRegion: string;
  readonly bucketName: string;
  readonly bucketArn: string;
  readonly replicationQueueName: string;
  readonly replicationQueueUrl: string;
  readonly replicationQueueArn: string;
  /** The peer's table, where a failover run in this region fences the tenant. */
  readonly tableName: string;
  readonly tableArn: string;

  constructor(scope: IConstruct, stage: string, peerRegion: string) {
    const stack = Stack.of(scope);
    this.name = regionName(peerRegion);
    this.awsRegion = peerRegion;
    // Both stacks are deployed to one account (see names.ts): the account token resolves alike.
    this.bucketName = bucketName(stage, "replication", stack.account, peerRegion);
    this.bucketArn = stack.formatArn({
      service: "s3",
      region: "",
      account: "",
      resource: this.bucketName,
      arnFormat: ArnFormat.NO_RESOURCE_NAME,
    });
    this.replicationQueueName = queueName(stage, "replication");
    this.replicationQueueUrl = queueUrl(
      peerRegion,
      stack.account,
      this.replicationQueueName,
      stack.urlSuffix,
    );
    this.replicationQueueArn = stack.formatArn({
      service: "sqs",
      region: peerRegion,
      resource: this.replicationQueueName,
      arnFormat: ArnFormat.NO_RESOURCE_NAME,
    });
    this.tableName = tableName(stage);
    this.tableArn = stack.formatArn({
      service: "dynamodb",
      region: peerRegion,
      resource: "table",
      resourceName: this.tableName,
    });
  }

  /**
   * What makes `config.dr.peer` defined in shared/config.ts. Every function whose code checks for
   * a peer gets it (the api, clone worker and user-data worker only enqueue replication work when
   * a peer exists); only the replication worker is allowed to reach the peer (grantShipTo).
   */
  environment(): Record<string, string> {
    return {
      PRISTINE_PEER_REGION_NAME: this.name,
      PRISTINE_PEER_BUCKET: this.bucketName,
      PRISTINE_PEER_REPLICATION_QUEUE_URL: this.replicationQueueUrl,
      PRISTINE_PEER_AWS_REGION: this.awsRegion,
      PRISTINE_PEER_TABLE_NAME: this.tableName,
    };
  }

  /**
   * UpdateItem on the peer's table: the failover (the api function) fences the tenant there
   * directly, so the primary refuses its logons from the moment the failover answers. Without
   * a route to the peer region (isolated subnets) the fence arrives by the replication queue.
   */
  grantFence(role: iam.IRole): void {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ["dynamodb:UpdateItem"], resources: [this.tableArn] }),
    );
  }

  /** PutObject into the peer's replication bucket and SendMessage(Batch) to its replication queue. */
  grantShipTo(role: iam.Role): void {
    grantObjectWrite(this.bucketArn, role);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ["sqs:SendMessage"], resources: [this.replicationQueueArn] }),
    );
  }
}
