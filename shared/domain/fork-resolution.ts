/**
 * The tenant resolves a fork of a user's data (user-data-forks.ts): `current` drops it, `fork`
 * makes its content the user's next version, committed like a session's change (so it is shipped
 * to the peer as a delta and verified there like any other).
 */
import type { Ports } from "../ports/index.ts";
import { userRef } from "./common.ts";
import type { ForkResolution, UserDataFork } from "./dr-model.ts";
import { DomainError, notFound, RetryLater } from "./errors.ts";
import { commitUserData } from "./user-data.ts";

type ResolvePorts = Parameters<typeof commitUserData>[0] & Pick<Ports, "userDataJobs">;

/** The resolution's name, as a session's would be (its overlay and commit are the fork's). */
const resolutionSessionId = (forkId: string) => `resolve-${forkId}`;

/** POST /v1/dr/forks/{forkId}/resolve: starts the resolution (a job on the user's queue group). */
export async function resolveFork(
  ports: ResolvePorts,
  tenantId: string,
  forkId: string,
  keep: ForkResolution,
): Promise<UserDataFork> {
  const fork = await ports.forks.get(tenantId, forkId);
  if (!fork) throw notFound("fork", forkId);
  if (fork.state !== "OPEN" && fork.keep !== keep) throw alreadyResolved(fork);
  if (fork.state === "RESOLVED") return fork;
  if ((await ports.dr.getState(tenantId))?.fenced)
    throw new DomainError(
      "tenantFailedOver",
      `tenant ${tenantId} is served by the peer region: resolve it there`,
    );
  if (keep === "fork") {
    const record = await ports.userData.get(userRef(fork));
    const writer = record?.attachedSessionId;
    if (writer && writer !== resolutionSessionId(forkId)) {
      const session = await ports.sessions.get(tenantId, writer);
      if (session?.state === "ACTIVE")
        throw new DomainError(
          "userDataInUse",
          `${fork.userId} is logged on (session ${writer}); retry after logoff`,
        );
    }
  }
  if (!(await ports.forks.setResolving(tenantId, forkId, keep))) {
    const now = await ports.forks.get(tenantId, forkId);
    throw alreadyResolved(now ?? fork);
  }
  await ports.userDataJobs.send([
    {
      kind: "resolve-fork",
      tenantId,
      userId: fork.userId,
      sessionId: resolutionSessionId(forkId),
      forkId,
    },
  ]);
  return { ...fork, state: "RESOLVING", keep };
}

const alreadyResolved = (fork: UserDataFork) =>
  new DomainError("forkResolved", `fork ${fork.forkId} is ${fork.state} with keep=${fork.keep}`);

/** The job: runs between the user's sessions (their queue group), once or again after a crash. */
export async function runForkResolution(
  ports: ResolvePorts,
  job: { tenantId: string; userId: string; sessionId: string; forkId: string },
): Promise<string> {
  const ref = userRef(job);
  const fork = await ports.forks.get(job.tenantId, job.forkId);
  if (fork?.state !== "RESOLVING") return `skipped: fork ${job.forkId} is ${fork?.state ?? "unknown"}`;
  let version: number | undefined;
  if (fork.keep === "fork") {
    let record = await ports.userData.get(ref);
    if (!record) throw new Error(`user data of ${job.userId} is missing`);
    if (record.lastCommittedSessionId !== job.sessionId) {
      if (record.attachedSessionId !== job.sessionId) {
        await ports.userDataStore.overlayFromFork(ref, fork.forkId, job.sessionId, record.version);
        const at = ports.clock.now().toISOString();
        if (!(await ports.userData.attach(ref, job.sessionId, record.version, at))) {
          // A logon came first: waiting here would hold its commit back (same queue group).
          await ports.userDataStore.removeOverlay(ref, job.sessionId);
          await ports.forks.reopen(job.tenantId, fork.forkId);
          return `fork ${fork.forkId} open again: ${job.userId} logged on before it was resolved`;
        }
      }
      const outcome = await commitUserData(ports, job);
      record = await ports.userData.get(ref);
      if (record?.lastCommittedSessionId !== job.sessionId)
        throw new RetryLater(`fork ${fork.forkId} not committed yet (${outcome})`);
    }
    version = record.version;
  }
  await ports.forks.setResolved(job.tenantId, fork.forkId, ports.clock.now().toISOString(), version);
  await ports.userDataStore.removeFork(ref, fork.forkId);
  return version === undefined ? `fork ${fork.forkId} dropped` : `fork ${fork.forkId} is v${version} now`;
}
