import { ArnFormat, Duration, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as s3 from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";
import { acknowledgeWildcardResources } from "../nag.ts";
import { type BucketKind, bucketName } from "../names.ts";

export interface StorageProps {
  readonly stage: string;
  readonly peerRegion: string;
}

const OBJECT_KEYS_ARE_DYNAMIC =
  "Object keys (image versions, users' data) are created at run time, so object-level actions are " +
  "granted on the bucket's objects (arn/*) of this one bucket, with the smallest action set used.";

/**
 * The region's object storage: the image store (golden image versions) and user data, plus a
 * bucket for their server access logs. The peer region's user-data bucket is addressed by its
 * deterministic name (same stage and account, the peer's region).
 */
export class Storage extends Construct {
  readonly accessLogs: s3.Bucket;
  readonly images: s3.Bucket;
  readonly userData: s3.Bucket;
  /** The peer region's user-data bucket (name and ARN derived, not looked up). */
  readonly peerUserDataBucketName: string;
  readonly peerUserDataBucketArn: string;

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
        "This is the server access log bucket of the image and user-data buckets; logging it into " +
        "itself would log every log delivery, and into another bucket would only move the question.",
    });

    this.images = this.dataBucket("Images", props.stage, "images", stack.region);
    this.userData = this.dataBucket("UserData", props.stage, "user-data", stack.region);

    this.peerUserDataBucketName = bucketName(props.stage, "user-data", stack.account, props.peerRegion);
    this.peerUserDataBucketArn = stack.formatArn({
      service: "s3",
      region: "",
      account: "",
      resource: this.peerUserDataBucketName,
      arnFormat: ArnFormat.NO_RESOURCE_NAME,
    });
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

/**
 * Write objects into one bucket (multipart included) and read them back, so a writer can verify
 * what it shipped (HeadObject with checksums).
 */
export function grantObjectReadWrite(bucketArn: string, role: iam.Role): void {
  const objects = `${bucketArn}/*`;
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
      resources: [objects],
    }),
  );
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["s3:ListBucket"], resources: [bucketArn] }));
  acknowledgeWildcardResources(role, [objects], OBJECT_KEYS_ARE_DYNAMIC);
}
