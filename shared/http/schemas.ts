/** Request schemas of the v1 API (DESIGN.md §4), one per body / path parameter. */
import { z } from "zod";
import { forkResolutions } from "../domain/dr-model.ts";
import { assignments, cloneTypes, refreshPolicies } from "../domain/model.ts";

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

/** A console file's name: any text (an unknown name, `..` among them, is 404, not 400). */
export const assetName = z.string().max(255);

/** Control and format characters (bidirectional overrides, zero-width joiners ...) hide what a name says. */
const hiddenCharacters = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\u2028\u2029]/u;

export const name = z
  .string()
  .trim()
  .min(1)
  .max(128)
  .refine((n) => !hiddenCharacters.test(n), "must not contain control, format or bidirectional characters");

/** An id that becomes a folder name must be one plain path segment (never `.` or `..`). */
const plainSegment = (id: string) => id !== "." && id !== "..";

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

const poolSize = z.number().int().min(1).max(2000);
/** A self-sizing pool's settings (they are checked together in the domain: minSize <= maxSize...). */
const sizing = {
  minSize: z.number().int().min(0).max(2000).optional(),
  maxSize: z.number().int().min(1).max(2000).optional(),
  spare: z.number().int().min(0).max(2000).optional(),
  poweredOnSpare: z.number().int().min(0).max(2000).optional(),
  idleSeconds: z
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 3600)
    .optional(),
  ticketTimeoutSeconds: z
    .number()
    .int()
    .min(1)
    .max(24 * 3600)
    .optional(),
};
const sizingNeedsMax = (b: {
  maxSize?: number | undefined;
  minSize?: number | undefined;
  spare?: number | undefined;
  poweredOnSpare?: number | undefined;
}) =>
  b.maxSize !== undefined ||
  (b.minSize === undefined && b.spare === undefined && b.poweredOnSpare === undefined);

/** A session timeout in seconds: at least one, at most 30 days. */
const timeoutSeconds = z
  .number()
  .int()
  .min(1)
  .max(30 * 86_400);
const warningSeconds = z.number().int().min(0).max(86_400);
const timeoutDescriptions = {
  disconnectSeconds: "log off a session disconnected for longer than this",
  idleSeconds: "log off a session idle (as its desktop agent reports) for longer than this",
  maxLifetimeSeconds: "log off any session older than this",
  warningSeconds: "warn the session this long before a timeout logs it off (default 60)",
} as const;
/** A pool's session timeouts (all optional; none: sessions never time out). */
export const sessionTimeouts = z.strictObject({
  disconnectSeconds: timeoutSeconds.optional().describe(timeoutDescriptions.disconnectSeconds),
  idleSeconds: timeoutSeconds.optional().describe(timeoutDescriptions.idleSeconds),
  maxLifetimeSeconds: timeoutSeconds.optional().describe(timeoutDescriptions.maxLifetimeSeconds),
  warningSeconds: warningSeconds.optional().describe(timeoutDescriptions.warningSeconds),
});
/** A change of a pool's session timeouts: each one given replaces the pool's, null clears it. */
export const sessionTimeoutsPatch = z.strictObject({
  disconnectSeconds: timeoutSeconds.nullable().optional().describe(timeoutDescriptions.disconnectSeconds),
  idleSeconds: timeoutSeconds.nullable().optional().describe(timeoutDescriptions.idleSeconds),
  maxLifetimeSeconds: timeoutSeconds.nullable().optional().describe(timeoutDescriptions.maxLifetimeSeconds),
  warningSeconds: warningSeconds.nullable().optional().describe(timeoutDescriptions.warningSeconds),
});

export const createPoolBody = z
  .strictObject({
    name,
    imageId: id,
    imageVersion: z.number().int().positive().optional(),
    size: poolSize.optional(),
    ...sizing,
    assignment: z.enum(assignments).default("floating"),
    cloneType: z.enum(cloneTypes).default("linked"),
    refreshPolicy: z.enum(refreshPolicies).optional(),
    // Bounded below too: DynamoDB numbers cannot be smaller than 1e-130.
    refreshWhenDeltaExceedsPercent: z.number().min(0.01).max(10_000).optional(),
    refreshEveryDays: z.number().min(0.001).max(3650).optional(),
    datastoreIds: z.array(id).min(1).max(64).optional(),
    sessionTimeouts: sessionTimeouts.optional(),
  })
  .refine(sizingNeedsMax, { path: ["maxSize"], message: "minSize and spare need maxSize" })
  .refine((b) => (b.size === undefined) !== (b.maxSize === undefined), {
    path: ["size"],
    message: "give either size (a fixed pool) or maxSize (a pool that sizes itself), not both",
  })
  .refine((b) => b.maxSize === undefined || (b.minSize ?? 0) <= b.maxSize, {
    path: ["minSize"],
    message: "must not be more than maxSize",
  })
  .refine((b) => b.maxSize === undefined || (b.spare ?? 0) <= b.maxSize, {
    path: ["spare"],
    message: "must not be more than maxSize",
  })
  .refine((b) => !(b.assignment === "dedicated" && b.maxSize !== undefined), {
    path: ["maxSize"],
    message: "a dedicated pool keeps each user's own desktop: give it a fixed size",
  })
  .refine((b) => !(b.assignment === "dedicated" && b.refreshPolicy === "delete"), {
    path: ["refreshPolicy"],
    message: "delete would take a dedicated user's desktop away at every logoff; use none or refresh",
  })
  .refine((b) => !(b.assignment === "floating" && b.refreshPolicy === "none"), {
    path: ["refreshPolicy"],
    message:
      "none would hand a floating desktop to the next user with the previous user's changes; use refresh or delete",
  });

/** Each field given changes the pool; an empty body changes nothing (and answers the pool). */
export const patchPoolBody = z
  .strictObject({ size: poolSize.optional(), ...sizing, sessionTimeouts: sessionTimeoutsPatch.optional() })
  .refine(
    ({ sessionTimeouts: _, ...b }) =>
      b.size === undefined || Object.values(b).filter((v) => v !== undefined).length === 1,
    { path: ["size"], message: "size makes the pool a fixed one: give it without the sizing settings" },
  );

export const recomposeBody = z.strictObject({
  imageVersion: z.number().int().positive(),
  force: z.boolean().optional(),
});

export const rollbackBody = z.union([z.strictObject({ force: z.boolean().optional() }), z.undefined()]);

export const versionNumber = z.coerce.number().int().positive();

export const registerDatastoreBody = z.strictObject({
  datastoreId: id,
  path: z
    .string()
    .min(1)
    .max(4096)
    .refine((p) => p.startsWith("/"), "must be an absolute path"),
  capacityGiB: z
    .number()
    .min(1 / 1024)
    .max(1024 * 1024),
  overcommit: z.number().min(1).max(100).default(1),
  hostId: id.optional(),
  /** Clone-storm caps of this datastore (default: the region's, PRISTINE_*_CAP_PER_DATASTORE). */
  provisioningCap: z.number().int().min(1).max(1000).optional(),
  maintenanceCap: z.number().int().min(1).max(1000).optional(),
});

export const rebalanceBody = z.union([
  z.strictObject({ thresholdPercent: z.number().min(0).max(100).optional() }),
  z.undefined(),
]);

export const logonBody = z.strictObject({
  userId: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9._@+-]+$/, "must be letters, digits and . _ @ + -")
    .refine(plainSegment, "must not be . or .."),
});

export const emptyBody = z.union([z.strictObject({}), z.undefined()]);

export const startDrillBody = z.strictObject({
  pools: z.array(id).min(1).max(100),
  sampleUsers: z.number().int().min(1).max(100_000).optional(),
});

export const resolveForkBody = z.strictObject({
  keep: z
    .enum(forkResolutions)
    .describe("current: drop the fork; fork: make its content the user's next version"),
});

export const metricsQuery = z.strictObject({
  minutes: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 60)
    .default(30),
});

const quotaBytes = z
  .number()
  .int()
  .min(0)
  .max(2 ** 50);
/** The operator's quotas for a tenant: each one given replaces the default; one left out is the default. */
export const putQuotasBody = z.strictObject({
  maxDesktops: z.number().int().min(0).max(1_000_000).optional(),
  maxProvisionedBytes: quotaBytes.optional(),
  maxImages: z.number().int().min(0).max(1_000_000).optional(),
  maxImageBytes: quotaBytes.optional(),
});
