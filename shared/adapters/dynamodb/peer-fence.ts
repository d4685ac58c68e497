import type { PeerRegion } from "../../ports/index.ts";
import { documentClient } from "./client.ts";
import { drRepository } from "./repositories/dr.ts";
import { tableAccess } from "./table.ts";

/**
 * The failover's fence, written into the peer region's own table (the same DR-state item that
 * its logons read), so the peer refuses the tenant from the moment the write returns.
 */
export function dynamoPeerFence(opts: {
  tableName: string | undefined;
  endpoint?: string | undefined;
  awsRegion?: string | undefined;
}): PeerRegion["fence"] {
  const { tableName } = opts;
  if (!tableName)
    return async () => {
      throw new Error("the peer's table is not configured (PRISTINE_PEER_TABLE_NAME)");
    };
  const dr = drRepository(tableAccess(documentClient(opts.endpoint, opts.awsRegion), tableName));
  return async (tenantId, epoch, at) => {
    await dr.enterEpoch(tenantId, epoch, { failedOver: true, fenced: true, failedOverAt: at });
  };
}
