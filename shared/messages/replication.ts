/**
 * Messages on a region's replication queue. The `ship-*` kinds are produced and consumed in the
 * region that owns the change; `apply-*` kinds are sent by the peer region into this region's
 * queue (after the artifact is in this region's bucket); `user-data-applied` goes back as the
 * peer's verified acknowledgement. Deliveries may be duplicated and reordered.
 */
import { z } from "zod";

const userRef = { tenantId: z.string().min(1), userId: z.string().min(1) };
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

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
  }),
  z.object({
    kind: z.literal("user-data-applied"),
    ...userRef,
    version: z.number().int().positive(),
    sha256,
    appliedAt: z.iso.datetime(),
  }),
  /** The peer declared a failover (`failedOver: true`) or completed failback (`false`). */
  z.object({ kind: z.literal("set-failover"), tenantId: z.string().min(1), failedOver: z.boolean() }),
  /** Own queue: keeps telling the peer about a failover until it hears it. */
  z.object({ kind: z.literal("notify-failover"), tenantId: z.string().min(1), failedOver: z.boolean() }),
  z.object({ kind: z.literal("run-failback"), tenantId: z.string().min(1) }),
  /** One step of a drill (a step machine): `step` is the drill's step count it was sent for. */
  z.object({
    kind: z.literal("run-drill"),
    tenantId: z.string().min(1),
    drillId: z.string().min(1),
    step: z.number().int().min(0).optional(),
  }),
]);

export type ReplicationMessage = z.infer<typeof replicationMessageSchema>;

export const replicationKeys = {
  userDataDelta: (t: string, u: string, version: number) => `userdata/${t}/${u}/v${version}.qcow2`,
  image: (t: string, imageId: string, version: number) => `images/${t}/${imageId}/v${version}.qcow2`,
  config: (t: string, at: string) => `config/${t}/${at}.json`,
};
