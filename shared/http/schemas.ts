/** Request schemas of the v1 API (DESIGN.md §4), one per body / path parameter. */
import { z } from "zod";

export const id = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9-]+$/, "must be letters, digits and dashes");

/** Session ids are `ses-<token>.<poolId>.<desktopId>`. */
export const sessionId = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9.-]+$/, "must be letters, digits, dots and dashes");

export const name = z.string().trim().min(1).max(128);

export const createTenantBody = z.strictObject({ name });

export const createImageBody = z.strictObject({ name });

export const publishVersionBody = z.strictObject({
  source: z.union(
    [
      z.strictObject({ path: z.string().min(1).max(4096) }),
      z.strictObject({
        blankSizeMiB: z
          .number()
          .int()
          .min(1)
          .max(1024 * 1024),
      }),
    ],
    { error: 'must be {"path": "/abs/disk.qcow2"} or {"blankSizeMiB": n}' },
  ),
});

export const createPoolBody = z.strictObject({
  name,
  imageId: id,
  imageVersion: z.number().int().positive().optional(),
  size: z.number().int().min(1).max(2000),
  assignment: z.literal("floating").default("floating"),
  cloneType: z.literal("linked").default("linked"),
});

export const logonBody = z.strictObject({
  userId: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9._@+-]+$/, "must be letters, digits and . _ @ + -"),
});

export const emptyBody = z.union([z.strictObject({}), z.undefined()]);

export const startDrillBody = z.strictObject({
  pools: z.array(id).min(1).max(100),
  sampleUsers: z.number().int().min(1).max(100_000).optional(),
});
