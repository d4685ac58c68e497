/**
 * The desktop agent's session events besides logoff: the user disconnected, reconnected, or has
 * been idle so long. Same envelope, bus rule and queue as `Session Logoff`; `at` is the agent's
 * time of the fact, so a stale or reordered event can be told from a fresh one.
 */
import { z } from "zod";
import { type LogoffEvent, logoffEventSchema } from "./logoff-event.ts";

const ref = {
  tenantId: z.string().min(1),
  sessionId: z.string().min(1),
  desktopId: z.string().min(1),
  at: z.iso.datetime({ offset: true }),
};

export const sessionEventTypes = ["Session Disconnected", "Session Reconnected", "Session Idle"] as const;
export type SessionEventType = (typeof sessionEventTypes)[number];

const envelope = <T extends SessionEventType, D extends z.ZodRawShape>(type: T, detail: D) =>
  z.object({
    source: z.literal("pristine.desktop"),
    "detail-type": z.literal(type),
    detail: z.object(detail),
  });

export const sessionEventSchema = z.discriminatedUnion("detail-type", [
  envelope("Session Disconnected", ref),
  envelope("Session Reconnected", ref),
  /** `idleSeconds`: how long the user had given no input at `at`; 0 when they are active again. */
  envelope("Session Idle", {
    ...ref,
    idleSeconds: z
      .number()
      .int()
      .min(0)
      .max(10 * 365 * 86_400),
  }),
]);
export type SessionEvent = z.infer<typeof sessionEventSchema>;

/** Every event a desktop agent sends (through its host): what the logoff queue carries. */
export const desktopEventSchema = z.discriminatedUnion("detail-type", [
  logoffEventSchema,
  ...sessionEventSchema.options,
]);
export type DesktopEvent = LogoffEvent | SessionEvent;

/** The detail-types the bus rule routes to the logoff queue. */
export const desktopEventTypes = ["Session Logoff", ...sessionEventTypes] as const;

export function sessionEvent<E extends SessionEvent>(type: E["detail-type"], detail: E["detail"]): E {
  return { source: "pristine.desktop", "detail-type": type, detail } as E;
}
