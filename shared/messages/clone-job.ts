/**
 * Messages on the clone-jobs queue: one schema shared by every producer (api, logoff, reconciler)
 * and the consumer (clone worker). Every job is idempotent; the worker re-checks state.
 */
import { z } from "zod";

const desktopRef = {
  tenantId: z.string().min(1),
  poolId: z.string().min(1),
  desktopId: z.string().min(1),
};

export const cloneJobSchema = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("import-image-version"),
    tenantId: z.string().min(1),
    imageId: z.string().min(1),
    version: z.number().int().positive(),
  }),
  z.object({
    kind: z.literal("prepare-replica"),
    tenantId: z.string().min(1),
    imageId: z.string().min(1),
    version: z.number().int().positive(),
    datastoreId: z.string().min(1),
  }),
  z.object({ kind: z.literal("provision-desktop"), ...desktopRef }),
  /** Moves a RECOMPOSING desktop onto its pool's current image version. */
  z.object({ kind: z.literal("recompose-desktop"), ...desktopRef }),
  z.object({ kind: z.literal("replace-desktop"), ...desktopRef }),
  z.object({ kind: z.literal("refresh-desktop"), ...desktopRef, sessionId: z.string().min(1) }),
  z.object({ kind: z.literal("delete-desktop"), ...desktopRef }),
]);

export type CloneJob = z.infer<typeof cloneJobSchema>;
