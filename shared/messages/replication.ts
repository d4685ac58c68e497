/**
 * Messages on a region's replication queue. The `ship-*` kinds are produced and consumed in the
 * region that owns the change; `apply-*` kinds are sent by the peer region into this region's
 * queue (after the artifact is in this region's bucket); `user-data-applied` goes back as the
 * peer's verified acknowledgement. Deliveries may be duplicated and reordered.
 */
import { z } from "zod";
import { readinessFailureKinds, readinessUserStates } from "../domain/dr-model.ts";

const userRef = { tenantId: z.string().min(1), userId: z.string().min(1) };
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const version = z.number().int().min(0);

/** A readiness check's findings, as the checking region sends them back (model: ReadinessReport). */
export const readinessReportSchema = z.object({
  tenantId: z.string().min(1),
  checkId: z.string().min(1),
  sourceRegion: z.string().min(1),
  checkedRegion: z.string().min(1),
  sampledAt: z.iso.datetime(),
  checkedAt: z.iso.datetime(),
  ok: z.boolean(),
  rpoMs: z.number().min(0),
  usersTotal: version,
  users: z.array(
    z.object({
      userId: z.string().min(1),
      version,
      drVersion: version,
      state: z.enum(readinessUserStates),
      contentVerified: z.boolean(),
      reason: z.string().optional(),
    }),
  ),
  imageVersionsChecked: version,
  poolsChecked: version,
  failures: z.array(
    z.object({ kind: z.enum(readinessFailureKinds), id: z.string().min(1), reason: z.string() }),
  ),
});

export const replicationMessageSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("ship-config"), tenantId: z.string().min(1) }),
  z.object({
    kind: z.literal("apply-config"),
    tenantId: z.string().min(1),
    key: z.string().min(1),
    sourceRegion: z.string().min(1),
  }),
  z.object({ kind: z.literal("ship-user-data"), ...userRef, version: z.number().int().positive() }),
  z.object({
    kind: z.literal("apply-user-data"),
    ...userRef,
    version: z.number().int().positive(),
    /** Content checksum of the resulting disk in the source region. */
    sha256,
    sizeBytes: z.number().int().positive(),
    key: z.string().min(1),
    committedAt: z.iso.datetime(),
    sourceRegion: z.string().min(1),
    /** The DR epoch the change was made in (absent: 0). */
    epoch: version.optional(),
    /** Content checksum of the version the change was made on. */
    baseSha256: sha256.optional(),
  }),
  z.object({
    kind: z.literal("user-data-applied"),
    ...userRef,
    version: z.number().int().positive(),
    sha256,
    appliedAt: z.iso.datetime(),
    /** Not applied: the peer's own history of a later epoch replaces the change (see forks). */
    superseded: z.boolean().optional(),
  }),
  /** The peer declared a failover (`failedOver: true`) or completed failback (`false`) at `epoch`. */
  z.object({
    kind: z.literal("set-failover"),
    tenantId: z.string().min(1),
    failedOver: z.boolean(),
    epoch: version.optional(),
  }),
  /** Own queue: keeps telling the peer about a failover until it hears it. */
  z.object({
    kind: z.literal("notify-failover"),
    tenantId: z.string().min(1),
    failedOver: z.boolean(),
    epoch: version.optional(),
  }),
  z.object({ kind: z.literal("run-failback"), tenantId: z.string().min(1) }),
  /** One step of a drill (a step machine): `step` is the drill's step count it was sent for. */
  z.object({
    kind: z.literal("run-drill"),
    tenantId: z.string().min(1),
    drillId: z.string().min(1),
    step: z.number().int().min(0).optional(),
  }),
  /** Own queue (the readiness schedule): sample the tenant for the period `checkId` and ask the peer. */
  z.object({ kind: z.literal("sample-readiness"), tenantId: z.string().min(1), checkId: z.string().min(1) }),
  /** To the peer: what the source holds; the peer compares it with its own copies. */
  z.object({
    kind: z.literal("verify-readiness"),
    tenantId: z.string().min(1),
    checkId: z.string().min(1),
    sourceRegion: z.string().min(1),
    sampledAt: z.iso.datetime(),
    rpoMs: z.number().min(0),
    usersTotal: version,
    users: z.array(z.object({ userId: z.string().min(1), version, replicatedVersion: version, sha256 })),
    imageVersions: z.array(
      z.object({
        imageId: z.string().min(1),
        version,
        sha256: sha256.optional(),
        createdAt: z.iso.datetime().optional(),
      }),
    ),
    pools: z.array(z.object({ poolId: z.string().min(1), createdAt: z.iso.datetime().optional() })),
  }),
  /** Back to the source: the peer's findings. */
  z.object({
    kind: z.literal("readiness-report"),
    tenantId: z.string().min(1),
    report: readinessReportSchema,
  }),
]);

export type ReplicationMessage = z.infer<typeof replicationMessageSchema>;

export const replicationKeys = {
  userDataDelta: (t: string, u: string, version: number) => `userdata/${t}/${u}/v${version}.qcow2`,
  image: (t: string, imageId: string, version: number) => `images/${t}/${imageId}/v${version}.qcow2`,
  config: (t: string, at: string) => `config/${t}/${at}.json`,
};
