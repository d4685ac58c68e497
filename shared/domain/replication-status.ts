/** What a region knows of its replication to the peer: the backlog, its age and the RPO so far. */
import type { Ports } from "../ports/index.ts";
import type { UserData, UserDataChange } from "./dr-model.ts";
import { liveStandbyPools } from "./replication-config.ts";
import { rpoPercentiles } from "./replication-lag.ts";

export interface ReplicationBacklog {
  region: string;
  peer: string | undefined;
  pendingChanges: number;
  oldestPendingAgeMs: number;
  bytesShipped: number;
  rpoP50Ms: number | undefined;
  rpoP99Ms: number | undefined;
  users: {
    userId: string;
    version: number;
    replicatedVersion: number;
    lagVersions: number;
    lastChangeAt: string;
    oldestUnreplicatedAt?: string;
  }[];
  pending: { userId: string; version: number; committedAt: string; shippedAt?: string }[];
}

/**
 * Bytes shipped of a user's changes: the user's running total, which outlives the change records
 * (they expire once replicated and superseded); the records' own figures for a user without one.
 */
const shippedBytesOf = (u: UserData, outgoing: UserDataChange[]) =>
  u.shippedBytes ??
  outgoing.filter((c) => c.userId === u.userId).reduce((sum, c) => sum + (c.shippedBytes ?? 0), 0);

/** This region's replication to its peer, for one tenant: what is pending and how late it is. */
export async function replicationBacklog(
  ports: Pick<Ports, "userData" | "clock" | "region" | "peer">,
  tenantId: string,
): Promise<ReplicationBacklog> {
  const [users, changes] = await Promise.all([
    ports.userData.list(tenantId),
    ports.userData.listChanges(tenantId),
  ]);
  const now = ports.clock.now().getTime();
  const byUser = new Map<string, UserData>(users.map((u) => [u.userId, u]));
  const outgoing = changes.filter((c) => c.origin === ports.region.name);
  // A change the peer's later history superseded is not waited for: it waits here as a fork.
  const pending = outgoing.filter(
    (c) => !c.supersededAt && (byUser.get(c.userId)?.replicatedVersion ?? 0) < c.version,
  );
  // Over the change records still there: changes expire a week after they are replicated and
  // superseded, so the percentiles are those of recent changes (and of each user's latest).
  const rpo = rpoPercentiles(outgoing);
  const oldest = pending.reduce((min, c) => Math.min(min, Date.parse(c.committedAt)), now);
  return {
    region: ports.region.name,
    peer: ports.peer?.name,
    pendingChanges: pending.length,
    oldestPendingAgeMs: now - oldest,
    bytesShipped: users.reduce((sum, u) => sum + shippedBytesOf(u, outgoing), 0),
    rpoP50Ms: rpo.p50,
    rpoP99Ms: rpo.p99,
    users: users.map((u) => {
      const first = pending.filter((c) => c.userId === u.userId).sort((a, b) => a.version - b.version)[0];
      return {
        userId: u.userId,
        version: u.version,
        replicatedVersion: u.replicatedVersion,
        lagVersions: u.version - u.replicatedVersion,
        lastChangeAt: u.lastChangeAt,
        ...(first ? { oldestUnreplicatedAt: first.committedAt } : {}),
      };
    }),
    pending: pending.map((c) => ({
      userId: c.userId,
      version: c.version,
      committedAt: c.committedAt,
      ...(c.shippedAt ? { shippedAt: c.shippedAt } : {}),
    })),
  };
}

/** GET /v1/dr/replication: the backlog, and this region's DR state for the tenant. */
export async function replicationStatus(
  ports: Pick<Ports, "userData" | "forks" | "clock" | "region" | "peer" | "dr">,
  tenantId: string,
) {
  const [backlog, state, forks] = await Promise.all([
    replicationBacklog(ports, tenantId),
    ports.dr.getState(tenantId),
    ports.forks.list(tenantId),
  ]);
  const { standbyPools: _all, standbyRevision: _revision, shippedImages, ...dr } = state ?? { tenantId };
  return {
    ...backlog,
    forks,
    dr: {
      ...dr,
      // A pool deleted in the primary is no standby, whatever a late document said.
      standbyPools: liveStandbyPools(state).map((p) => p.poolId),
      imagesShipped: shippedImages?.length ?? 0,
    },
  };
}
