import { RemovalPolicy } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import type * as iam from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";
import { tableSchema } from "../../shared/adapters/dynamodb/table-schema.ts";
import { acknowledgeWildcardResources } from "../nag.ts";
import { tableName } from "../names.ts";

const INDEX_WILDCARD =
  "The grant covers the table and its indexes (table-arn/index/*): the indexes are gsi1 (free desktops) " +
  "and gsi2 (the reconciler's watch index) of this table, and queries on them are part of the access patterns the function uses.";

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
    // Keys, index and TTL come from the same schema the local runtime creates its tables from.
    const key = (name: string) => ({ name, type: dynamodb.AttributeType.STRING });
    this.table = new dynamodb.Table(this, "Table", {
      tableName: tableName(props.stage),
      partitionKey: key(tableSchema.partitionKey),
      sortKey: key(tableSchema.sortKey),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      timeToLiveAttribute: tableSchema.ttlAttribute,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const index of tableSchema.indexes)
      this.table.addGlobalSecondaryIndex({
        indexName: index.name,
        partitionKey: key(index.partitionKey),
        sortKey: key(index.sortKey),
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
