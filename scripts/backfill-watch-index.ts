/**
 * Once, after deploying the version that added the reconciler's watch index (gsi2) to an existing
 * table: gives the items it must hold their keys (desktops waiting on a job or assigned, users'
 * locks, versions being published, pools). Live writers set the keys themselves; this fills in the rest.
 *
 *   PRISTINE_TABLE_NAME=pristine-dev AWS_REGION=eu-west-1 node scripts/backfill-watch-index.ts
 */
import { documentClient } from "../shared/adapters/dynamodb/client.ts";
import { backfillWatchIndex } from "../shared/adapters/dynamodb/upgrade.ts";

const table = process.env.PRISTINE_TABLE_NAME;
if (!table) throw new Error("set PRISTINE_TABLE_NAME");
const written = await backfillWatchIndex(documentClient(process.env.AWS_ENDPOINT_URL_DYNAMODB), table);
console.log(`${table}: watch index keys written on ${written} items`);
