import { Duration, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as s3 from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";
import { acknowledgeWildcardResources } from "../nag.ts";
import { type BucketKind, bucketName } from "../names.ts";

export interface StorageProps {
  readonly stage: string;
}

const OBJECT_KEYS_ARE_DYNAMIC =
  "Object keys (image versions, users' data) are created at run time, so object-level actions are " +
  "granted on the bucket's objects (arn/*) of this one bucket, with the smallest action set used.";

/**
 * The region's object storage: the image store bucket and the replication bucket (the peer region
 * ships user-data deltas, image versions and tenant configuration into it; PRISTINE_REPLICATION_BUCKET),
 * plus a bucket for their server access logs. Users' data disks live on the EFS datastore, not here.
 * The peer's replication bucket is addressed by its deterministic name (see peer.ts).
 */
export class Storage extends Construct {
  readonly accessLogs: s3.Bucket;
  readonly images: s3.Bucket;
  readonly replication: s3.Bucket;

  constructor(scope: Construct, id: string, props: StorageProps) {
    super(scope, id);
    const stack = Stack.of(this);

    this.accessLogs = new s3.Bucket(this, "AccessLogs", {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      // Server access log delivery supports SSE-S3 only.
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: "expire-access-logs", expiration: Duration.days(365) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.accessLogs).acknowledge({
      id: "AwsSolutions-S1",
      reason:
        "This is the server access log bucket of the image and replication buckets; logging it into " +
        "itself would log every log delivery, and into another bucket would only move the question.",
    });

    this.images = this.dataBucket("Images", props.stage, "images", stack.region);
    this.replication = this.dataBucket("Replication", props.stage, "replication", stack.region);
  }

  private dataBucket(id: string, stage: string, kind: BucketKind, region: string): s3.Bucket {
    return new s3.Bucket(this, id, {
      bucketName: bucketName(stage, kind, Stack.of(this).account, region),
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: `${kind}/`,
      lifecycleRules: [
        {
          id: "abort-incomplete-uploads-and-expire-old-versions",
          abortIncompleteMultipartUploadAfter: Duration.days(7),
          noncurrentVersionExpiration: Duration.days(30),
        },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}

/** Read objects of one bucket (and list it, so a missing key is a 404, not a 403). */
export function grantObjectRead(bucketArn: string, role: iam.Role): void {
  const objects = `${bucketArn}/*`;
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["s3:GetObject"], resources: [objects] }));
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["s3:ListBucket"], resources: [bucketArn] }));
  acknowledgeWildcardResources(role, [objects], OBJECT_KEYS_ARE_DYNAMIC);
}

/** Put objects into one bucket (single PutObject calls: the code uses no multipart upload). */
export function grantObjectWrite(bucketArn: string, role: iam.Role): void {
  const objects = `${bucketArn}/*`;
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["s3:PutObject"], resources: [objects] }));
  acknowledgeWildcardResources(role, [objects], OBJECT_KEYS_ARE_DYNAMIC);
}
