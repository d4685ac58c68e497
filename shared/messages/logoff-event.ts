/**
 * The desktop agent's logoff event (DESIGN.md §4). EventBridge delivers the whole envelope to the
 * logoff queue; the local runtime posts the same body.
 */
import { z } from "zod";

export const logoffEventSchema = z.object({
  source: z.literal("pristine.desktop"),
  "detail-type": z.literal("Session Logoff"),
  detail: z.object({
    tenantId: z.string().min(1),
    sessionId: z.string().min(1),
    desktopId: z.string().min(1),
    at: z.iso.datetime({ offset: true }),
  }),
});

export type LogoffEvent = z.infer<typeof logoffEventSchema>;

export function logoffEvent(detail: LogoffEvent["detail"]): LogoffEvent {
  return { source: "pristine.desktop", "detail-type": "Session Logoff", detail };
}
