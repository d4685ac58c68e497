import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { logoffEvent } from "../../messages/logoff-event.ts";
import type { DesktopEvent } from "../../messages/session-event.ts";
import type { EventBus } from "../../ports/index.ts";
import { sendJson } from "../sqs/queue.ts";

/** In AWS: PutEvents on the bus whose rule routes `Session Logoff` to the logoff queue. */
export function eventBridgeBus(busName: string, region?: string, endpoint?: string): EventBus {
  const client = new EventBridgeClient({ ...(region ? { region } : {}), ...(endpoint ? { endpoint } : {}) });
  const put = async (event: DesktopEvent) => {
    const detail = event.detail;
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
        `EventBridge refused the ${event["detail-type"]} event: ${out.Entries?.[0]?.ErrorMessage ?? "unknown"}`,
      );
  };
  return { logoff: (detail) => put(logoffEvent(detail)), session: put };
}

/** Locally: the same envelope the rule would deliver, straight onto the logoff queue. */
export function queueBus(sqs: SQSClient, logoffQueueUrl: string): EventBus {
  return {
    logoff: (detail) => sendJson(sqs, logoffQueueUrl, [logoffEvent(detail)]),
    session: (event) => sendJson(sqs, logoffQueueUrl, [event]),
  };
}

/** A region whose desktops send no events here (no bus, no logoff queue configured). */
const missingBus = async () => {
  throw new Error("no event bus is configured for this function (PRISTINE_EVENT_BUS_NAME)");
};
export const noBus: EventBus = { logoff: missingBus, session: missingBus };
