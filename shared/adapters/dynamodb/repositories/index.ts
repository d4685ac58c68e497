import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { tableAccess } from "../table.ts";
import { datastoreRepository } from "./datastores.ts";
import { desktopRepository } from "./desktops.ts";
import { drRepository } from "./dr.ts";
import { hostRepository, screenshotRepository } from "./hosts.ts";
import { imageRepository } from "./images.ts";
import { logonQueueRepository } from "./logon-queue.ts";
import { metricSeriesRepository } from "./metrics.ts";
import { poolRepository } from "./pools.ts";
import { quotaRepository } from "./quotas.ts";
import { replicaRepository } from "./replicas.ts";
import { sessionRepository } from "./sessions.ts";
import { tenantRepository } from "./tenants.ts";
import { userDataRepository } from "./user-data.ts";
import { userDataForkRepository } from "./user-data-forks.ts";

/** Every repository of the region's single table, one module per aggregate. */
export function dynamoRepositories(
  doc: DynamoDBDocumentClient,
  tableName: string,
  opts: { lockStaleAfterMs?: number } = {},
) {
  const table = tableAccess(doc, tableName);
  return {
    tenants: tenantRepository(table),
    images: imageRepository(table),
    pools: poolRepository(table),
    logonQueue: logonQueueRepository(table),
    desktops: desktopRepository(table),
    sessions: sessionRepository(table, opts),
    datastores: datastoreRepository(table),
    quotas: quotaRepository(table),
    replicas: replicaRepository(table),
    userData: userDataRepository(table),
    forks: userDataForkRepository(table),
    dr: drRepository(table),
    metricSeries: metricSeriesRepository(table),
    hosts: hostRepository(table),
    screenshots: screenshotRepository(table),
  };
}
