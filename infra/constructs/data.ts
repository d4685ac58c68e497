import { RemovalPolicy } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import type * as iam from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";
import { acknowledgeWildcardResources } from "../nag.ts";
import { tableName } from "../names.ts";

const INDEX_WILDCARD =
  "The grant covers the table and its indexes (table-arn/index/*): the only index is gsi1 of this " +
  "table, and queries on it are part of the access patterns the function uses.";

export interface DataProps {
  readonly stage: string;
}

/**
 * The region's single table (single-table design, keys prefixed by tenant). Each region has its
 * own table; DR replication is explicit (SQS), not a global table.
 */
export class Data extends Construct {
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: DataProps) {
    super(scope, id);
    this.table = new dynamodb.Table(this, "Table", {
      tableName: tableName(props.stage),
      partitionKey: { name: "pk", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "sk", type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      timeToLiveAttribute: "expiresAt",
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: "gsi1",
      partitionKey: { name: "gsi1pk", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "gsi1sk", type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
  }
}

/** Item reads and writes on the table and its index (dynamodb:* is never granted). */
export function grantTableReadWrite(table: dynamodb.Table, role: iam.Role): void {
  table.grantReadWriteData(role);
  acknowledgeWildcardResources(role, [`${table.tableArn}/index/*`], INDEX_WILDCARD);
}

/** Item reads only (GetItem, Query, ...) on the table and its index. */
export function grantTableRead(table: dynamodb.Table, role: iam.Role): void {
  table.grantReadData(role);
  acknowledgeWildcardResources(role, [`${table.tableArn}/index/*`], INDEX_WILDCARD);
}
