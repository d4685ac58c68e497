/**
 * Once, after deploying a version that added the reconciler's watch index (gsi2) to an existing
 * table or gave it a new kind of item: gives the items it must hold their keys (desktops waiting
 * on a job or assigned, users' locks, versions being published, pools, users' data behind
 * replication). Live writers set the keys themselves; this fills in the rest, and notes in the
 * table that it has (so the local runtime does not do it again).
 *
 *   PRISTINE_TABLE_NAME=pristine-dev AWS_REGION=eu-west-1 node scripts/backfill-watch-index.ts
 */
import { documentClient } from "../shared/adapters/dynamodb/client.ts";
import { backfillWatchIndex, markWatchBackfilled } from "../shared/adapters/dynamodb/upgrade.ts";

const table = process.env.PRISTINE_TABLE_NAME;
if (!table) throw new Error("set PRISTINE_TABLE_NAME");
const doc = documentClient(process.env.AWS_ENDPOINT_URL_DYNAMODB);
const written = await backfillWatchIndex(doc, table);
await markWatchBackfilled(doc, table);
console.log(`${table}: watch index keys written on ${written} items`);
