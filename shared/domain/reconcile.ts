import type { CloneJob } from "../messages/clone-job.ts";
import type { Ports } from "../ports.ts";
import { desktopRef } from "./common.ts";

export interface ReconcileReport {
  examined: number;
  requeued: Record<string, number>;
}

/**
 * Repairs what a crash can leave behind: a desktop whose job was never sent (a worker or the
 * logoff path died between its write and its send) sits in a transitional state. Re-sending the
 * job is always safe because every job re-checks state.
 */
export async function reconcile(
  ports: Pick<Ports, "desktops" | "jobs" | "clock" | "userData" | "replication" | "peer">,
  staleAfterMs: number,
): Promise<ReconcileReport> {
  const cutoff = new Date(ports.clock.now().getTime() - staleAfterMs).toISOString();
  const stuck = await ports.desktops.listStuck(cutoff);
  const jobs: CloneJob[] = [];
  for (const d of stuck) {
    if (d.state === "PROVISIONING") jobs.push({ kind: "provision-desktop", ...desktopRef(d) });
    else if (d.state === "DELETING") jobs.push({ kind: "delete-desktop", ...desktopRef(d) });
    else if (d.state === "RECOMPOSING") jobs.push({ kind: "recompose-desktop", ...desktopRef(d) });
    else if (d.state === "ERROR") jobs.push({ kind: "replace-desktop", ...desktopRef(d) });
    else if (d.state === "REFRESHING" && d.lastSessionId) {
      jobs.push({ kind: "refresh-desktop", ...desktopRef(d), sessionId: d.lastSessionId });
    }
  }
  await ports.jobs.send(jobs);
  const requeued: Record<string, number> = {};
  for (const j of jobs) requeued[j.kind] = (requeued[j.kind] ?? 0) + 1;
  const behind = ports.peer ? await ports.userData.listBehind(cutoff) : [];
  const ships = behind.flatMap((u) =>
    Array.from({ length: u.version - u.replicatedVersion }, (_, i) => ({
      kind: "ship-user-data" as const,
      tenantId: u.tenantId,
      userId: u.userId,
      version: u.replicatedVersion + 1 + i,
    })),
  );
  // A change whose messages were lost (e.g. dead-lettered while the peer was away) is shipped
  // again: shipping and applying are idempotent, and the peer applies in version order.
  if (ships.length > 0) {
    await ports.replication.send(ships);
    requeued["ship-user-data"] = ships.length;
  }
  return { examined: stuck.length + behind.length, requeued };
}
