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
    this.replication = this.dataBucket("Replication", props.stage, "replication", stack.region, [
      // Retention of user-data deltas (key userdata/<tenant>/<user>/v<n>.qcow2). The region that
      // applies a delta deletes the previous version's once it has applied and verified the next
      // one (both regions then have both). The bucket is versioned, so that delete leaves a
      // noncurrent version, kept for a few days (to undo a mistake), then removed by this rule with
      // its delete marker. A current object never expires by age: a delta not yet applied here may
      // be the only copy of a user's change once the source region is gone.
      {
        id: "expire-superseded-user-data-deltas",
        prefix: "userdata/",
        noncurrentVersionExpiration: Duration.days(3),
        expiredObjectDeleteMarker: true,
      },
    ]);
  }

  private dataBucket(
    id: string,
    stage: string,
    kind: BucketKind,
    region: string,
    extraRules: s3.LifecycleRule[] = [],
  ): s3.Bucket {
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
          // Uploads are multipart: the parts of one that never completed go after a day.
          id: "abort-incomplete-uploads-and-expire-old-versions",
          abortIncompleteMultipartUploadAfter: Duration.days(1),
          noncurrentVersionExpiration: Duration.days(30),
        },
        ...extraRules,
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
 * Put objects into one bucket, in parts (lib-storage's Upload: CreateMultipartUpload, UploadPart
 * and CompleteMultipartUpload are s3:PutObject; a failed upload is aborted, and its parts listed).
 */
export function grantObjectWrite(bucketArn: string, role: iam.Role): void {
  const objects = `${bucketArn}/*`;
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
      resources: [objects],
    }),
  );
  acknowledgeWildcardResources(role, [objects], OBJECT_KEYS_ARE_DYNAMIC);
}

/**
 * Delete objects of one bucket: the region's own replication bucket, where the apply side removes
 * the deltas it has applied and superseded, and the copies of deleted image versions.
 */
export function grantObjectDelete(bucketArn: string, role: iam.Role): void {
  const objects = `${bucketArn}/*`;
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["s3:DeleteObject"], resources: [objects] }));
  acknowledgeWildcardResources(role, [objects], OBJECT_KEYS_ARE_DYNAMIC);
}
