import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { HostRepository, ScreenshotRepository } from "../../../ports/index.ts";
import { entities } from "../entities.ts";
import { keys } from "../keys.ts";
import type { Table } from "../table.ts";

export function hostRepository(t: Table): HostRepository {
  return {
    async heartbeat(host) {
      // An update that answers the state before it: LATE means the host is back.
      const out = await t.doc.send(
        new UpdateCommand({
          TableName: t.name,
          Key: keys.host(host.hostId),
          UpdateExpression:
            "SET entity = :e, hostId = :h, #state = :up, lastHeartbeatAt = :at, startedAt = :started, runningVms = :vms, freeMemoryBytes = :free, datastoreIds = :ds" +
            (host.problem ? ", problem = :problem" : " REMOVE problem"),
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: {
            ":e": entities.host.name,
            ":h": host.hostId,
            ":up": "UP",
            ":at": host.lastHeartbeatAt,
            ":started": host.startedAt,
            ":vms": host.runningVms,
            ":free": host.freeMemoryBytes,
            ":ds": host.datastoreIds,
            ...(host.problem ? { ":problem": host.problem } : {}),
          },
          ReturnValues: "UPDATED_OLD",
        }),
      );
      return out.Attributes?.state as "UP" | "LATE" | undefined;
    },
    get: (hostId) => t.get(entities.host, keys.host(hostId)),
    list: () => t.byPrefix(entities.host, keys.hostsPartition, "HOST#"),
    async markLate(hostId, lastHeartbeatAt) {
      return t.tryUpdate({
        Key: keys.host(hostId),
        UpdateExpression: "SET #state = :late",
        ConditionExpression: "#state = :up AND lastHeartbeatAt = :at",
        ExpressionAttributeNames: { "#state": "state" },
        ExpressionAttributeValues: { ":late": "LATE", ":up": "UP", ":at": lastHeartbeatAt },
      });
    },
  };
}

/** Screens live a minute: long enough for the request that asked, no longer. */
const screenshotTtlSeconds = 60;

export function screenshotRepository(t: Table): ScreenshotRepository {
  return {
    async put(tenantId, requestId, png) {
      const expiresAt = Math.floor(Date.now() / 1000) + screenshotTtlSeconds;
      await t.put(
        entities.screenshot.toItem({ tenantId, requestId, png: png.toString("base64"), expiresAt }),
      );
    },
    async get(tenantId, requestId) {
      const item = await t.get(entities.screenshot, keys.screenshot(tenantId, requestId));
      return item ? Buffer.from(item.png, "base64") : undefined;
    },
  };
}
