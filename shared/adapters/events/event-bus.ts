import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { logoffEvent } from "../../messages/logoff-event.ts";
import type { EventBus } from "../../ports/index.ts";
import { sendJson } from "../sqs/queue.ts";

/** In AWS: PutEvents on the bus whose rule routes `Session Logoff` to the logoff queue. */
export function eventBridgeBus(busName: string, region?: string, endpoint?: string): EventBus {
  const client = new EventBridgeClient({ ...(region ? { region } : {}), ...(endpoint ? { endpoint } : {}) });
  return {
    async logoff(detail) {
      const event = logoffEvent(detail);
      const out = await client.send(
        new PutEventsCommand({
          Entries: [
            {
              EventBusName: busName,
              Source: event.source,
              DetailType: event["detail-type"],
              Detail: JSON.stringify(detail),
            },
          ],
        }),
      );
      if ((out.FailedEntryCount ?? 0) > 0)
        throw new Error(
          `EventBridge refused the logoff event: ${out.Entries?.[0]?.ErrorMessage ?? "unknown"}`,
        );
    },
  };
}

/** Locally: the same envelope the rule would deliver, straight onto the logoff queue. */
export function queueBus(sqs: SQSClient, logoffQueueUrl: string): EventBus {
  return { logoff: (detail) => sendJson(sqs, logoffQueueUrl, [logoffEvent(detail)]) };
}

/** A region whose desktops send no events here (no bus, no logoff queue configured). */
export const noBus: EventBus = {
  async logoff() {
    throw new Error("no event bus is configured for this function (PRISTINE_EVENT_BUS_NAME)");
  },
};
