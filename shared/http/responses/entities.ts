/** The answers about tenants, datastores, images, pools, desktops, sessions and storage. */
import { z } from "zod";
import { type DesktopState, desktopStates } from "../../domain/desktop-state.ts";
import {
  assignments,
  cloneTypes,
  imageVersionStates,
  poolStates,
  quotaNames,
  refreshPolicies,
  sessionEndings,
  sessionStates,
  ticketStates,
  timeoutReasons,
} from "../../domain/model.ts";

import { bytes, count, timestamp } from "./fields.ts";

export const tenant = z
  .strictObject({ tenantId: z.string(), name: z.string(), createdAt: timestamp })
  .meta({ id: "Tenant" });
export const createdTenant = tenant
  .extend({
    apiKey: z.string().describe("shown once; only its hash is stored"),
  })
  .meta({ id: "CreatedTenant" });

export const tenantQuotas = z
  .strictObject({
    tenantId: z.string(),
    limits: z
      .strictObject({
        maxDesktops: count,
        maxProvisionedBytes: bytes,
        maxImages: count,
        maxImageBytes: bytes,
      })
      .describe("in force: the operator's overrides, the region's defaults for the rest"),
    overridden: z.array(z.enum(quotaNames)).describe("the quotas the operator set for this tenant"),
    usage: z
      .strictObject({ desktops: count, provisionedBytes: bytes, images: count })
      .describe("desktop records (until deleted), the bytes they reserve on datastores, images"),
  })
  .meta({ id: "TenantQuotas" });

export const datastore = z
  .strictObject({
    datastoreId: z.string(),
    path: z.string(),
    capacityGiB: z.number(),
    overcommit: z.number(),
    hostId: z.string().optional(),
    provisioningCap: z.number().int().optional().describe("its own cap on desktops provisioned at once"),
    maintenanceCap: z.number().int().optional().describe("its own cap on refreshes and recomposes at once"),
    createdAt: z.string().describe("ISO 8601 date-time; empty for the region's default datastore"),
  })
  .meta({ id: "Datastore" });
const diskJobCaps = z.strictObject({
  provisioning: z.number().int().describe("desktops provisioned at once at most"),
  maintenance: z.number().int().describe("refreshes and recomposes at once at most"),
});
export const datastoreUsage = datastore
  .extend({
    caps: diskJobCaps.describe(
      "the clone-storm caps in force on this datastore (its own, else the region's); jobs beyond them wait",
    ),
    hostCaps: diskJobCaps
      .optional()
      .describe("the caps on all disk jobs of its host (a datastore with a host)"),
    provisionedBytes: bytes,
    effectiveFreeBytes: z.number(),
    provisionedPercent: z.number(),
  })
  .meta({ id: "DatastoreUsage" });
export const rebalanceResult = z
  .strictObject({
    datastoreId: z.string(),
    thresholdPercent: z.number(),
    moved: z.array(z.strictObject({ from: z.string(), to: z.string() })),
    remainingExcessBytes: bytes,
  })
  .meta({ id: "RebalanceResult" });

export const image = z
  .strictObject({
    tenantId: z.string(),
    imageId: z.string(),
    name: z.string(),
    latestVersion: count,
    createdAt: timestamp,
  })
  .meta({ id: "Image" });
export const imageVersion = z
  .strictObject({
    tenantId: z.string(),
    imageId: z.string(),
    version: z.number().int().positive(),
    state: z.enum(imageVersionStates),
    source: z.union([z.strictObject({ path: z.string() }), z.strictObject({ blankSizeMiB: z.number() })]),
    sha256: z.string().optional(),
    virtualSizeBytes: bytes.optional(),
    fileBytes: bytes.optional(),
    error: z.string().optional(),
    createdAt: timestamp,
    readyAt: timestamp.optional(),
    retiredAt: timestamp.optional(),
  })
  .meta({ id: "ImageVersion" });
export const imageWithVersions = image
  .extend({ versions: z.array(imageVersion) })
  .meta({ id: "ImageWithVersions" });

const recomposeTarget = z.strictObject({
  fromVersion: z.number().int(),
  toVersion: z.number().int(),
  startedAt: timestamp,
});
export const pool = z
  .strictObject({
    tenantId: z.string(),
    poolId: z.string(),
    name: z.string(),
    imageId: z.string(),
    imageVersion: z.number().int().positive(),
    assignment: z.enum(assignments),
    cloneType: z.enum(cloneTypes),
    refreshPolicy: z.enum(refreshPolicies),
    refreshWhenDeltaExceedsPercent: z.number().optional(),
    refreshEveryDays: z.number().optional(),
    size: count.describe("desktops the pool has now"),
    minSize: count.optional().describe("a self-sizing pool never has fewer desktops"),
    maxSize: count.optional().describe("a self-sizing pool never has more (set: the pool sizes itself)"),
    spare: count.optional().describe("free desktops a self-sizing pool keeps ready for the next logons"),
    poweredOnSpare: count
      .optional()
      .describe("free desktops whose VMs keep running; the other free ones are STOPPED until needed"),
    idleSeconds: count.optional().describe("free desktops beyond the spare ones go after this long free"),
    ticketTimeoutSeconds: count.optional().describe("a queued logon's ticket expires after this long"),
    datastoreIds: z.array(z.string()),
    recompose: recomposeTarget.optional(),
    sessionTimeouts: z
      .strictObject({
        disconnectSeconds: count.optional(),
        idleSeconds: count.optional(),
        maxLifetimeSeconds: count.optional(),
        warningSeconds: count.optional(),
      })
      .optional()
      .describe("when sessions are logged off: disconnected, idle or running for longer than these"),
    state: z.enum(poolStates),
    createdAt: timestamp,
  })
  .meta({ id: "Pool" });
const desktopCounts = z.strictObject(
  Object.fromEntries(desktopStates.map((s) => [s, count])) as Record<DesktopState, typeof count>,
);
export const poolDescription = pool
  .extend({
    desktopCounts: desktopCounts.describe("desktops of the pool by state"),
    recompose: recomposeTarget
      .extend({ done: count, pending: count, failed: count })
      .optional()
      .describe("the last recompose and its progress, counted from the desktops"),
  })
  .meta({ id: "PoolDescription" });

const timeoutWarning = z
  .strictObject({ reason: z.enum(timeoutReasons), logoffAt: timestamp, warnedAt: timestamp })
  .describe("the session was warned that a timeout logs it off at logoffAt");
const desktopConsole = z.strictObject({
  host: z.string(),
  port: z.number().int(),
  websocketPort: z.number().int().optional(),
});
export const desktop = z
  .strictObject({
    tenantId: z.string(),
    poolId: z.string(),
    desktopId: z.string(),
    slot: z.number().int().optional(),
    state: z.enum(desktopStates),
    datastoreId: z.string(),
    imageId: z.string(),
    imageVersion: z.number().int(),
    cloneType: z.enum(cloneTypes).optional(),
    provisionedBytes: bytes.optional(),
    assignedUserId: z.string().optional(),
    createdAt: timestamp.optional().describe("when the desktop was added to its pool"),
    pristineAt: timestamp.optional(),
    diskJobStartedAt: timestamp
      .optional()
      .describe("when the latest disk job (provision, refresh, recompose) started on the desktop"),
    sessionId: z.string().optional(),
    userId: z.string().optional(),
    sessionStartedAt: timestamp.optional(),
    disconnectedAt: timestamp.optional(),
    idleSince: timestamp.optional(),
    connectionReportedAt: timestamp.optional().describe("the agent's time of the last connection report"),
    idleReportedAt: timestamp.optional().describe("the agent's time of the last idle report"),
    timeoutWarning: timeoutWarning.optional(),
    lastSessionId: z.string().optional(),
    generation: z.number().int().optional(),
    resentAt: timestamp.optional(),
    console: desktopConsole.optional(),
    connectedSessionId: z.string().optional(),
    error: z.string().optional(),
    updatedAt: timestamp,
  })
  .meta({ id: "Desktop" });
export const desktopWithDelta = desktop
  .extend({
    deltaBytes: bytes.describe("bytes allocated by the desktop's delta"),
  })
  .meta({ id: "DesktopWithDelta" });

export const session = z
  .strictObject({
    tenantId: z.string(),
    sessionId: z.string(),
    poolId: z.string(),
    desktopId: z.string(),
    userId: z.string(),
    state: z.enum(sessionStates),
    datastoreId: z.string().optional(),
    startedAt: timestamp,
    disconnectedAt: timestamp.optional().describe("disconnected since, as the desktop agent reported"),
    idleSince: timestamp.optional().describe("idle since, as the desktop agent reported"),
    timeoutWarning: timeoutWarning.optional(),
    endedAt: timestamp.optional(),
    endedBy: z.enum(sessionEndings).optional(),
  })
  .meta({ id: "Session" });
const connection = z.discriminatedUnion("protocol", [
  desktopConsole.extend({
    protocol: z.literal("vnc"),
    password: z.string().optional().describe("one-time; a new one at every logon, never stored"),
    expiresAt: timestamp.optional(),
    state: z.enum(["PREPARING", "READY"]),
  }),
  z.strictObject({ protocol: z.literal("external"), detail: z.string() }),
]);
const userDataStates = ["ATTACHING", "ATTACHED", "READ_ONLY", "COMMITTING", "COMMITTED"] as const;
export const logonResult = session
  .extend({
    connection,
    reconnected: z.boolean().describe("the user already had a session in this pool"),
    userData: z.strictObject({ state: z.literal("ATTACHING") }).optional(),
  })
  .meta({ id: "LogonResult" });
export const logonTicket = z
  .strictObject({
    tenantId: z.string(),
    poolId: z.string(),
    ticketId: z.string().describe("tickets are served in the order of their ids"),
    userId: z.string(),
    state: z.enum(ticketStates),
    position: count.describe("tickets ahead of this one (0: served next)"),
    createdAt: timestamp,
    validUntil: timestamp.describe("the ticket expires then unless served"),
    servedAt: timestamp.optional(),
    sessionId: z
      .string()
      .optional()
      .describe("once SERVED: the session (GET /v1/sessions/{id} for its connection)"),
  })
  .meta({ id: "LogonTicket" });
export const sessionDescription = session
  .extend({
    userData: z.strictObject({ state: z.enum(userDataStates), version: count.optional() }),
    connection: connection.optional(),
  })
  .meta({ id: "SessionDescription" });

const space = {
  usedBytes: bytes,
  provisionedBytes: bytes,
  fullCloneBytes: bytes,
  savedBytes: z.number(),
  replicaBytes: bytes,
  deltaBytes: bytes,
  desktops: count,
};
export const storageReport = z
  .strictObject({
    total: z.strictObject(space),
    datastores: z.array(z.strictObject({ datastoreId: z.string(), ...space })),
    pools: z.array(
      z.strictObject({ poolId: z.string(), name: z.string(), cloneType: z.enum(cloneTypes), ...space }),
    ),
  })
  .meta({ id: "StorageReport" });
