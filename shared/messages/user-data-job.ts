/**
 * Jobs on the user-data FIFO queue. The message group is the (tenant, user), so SQS hands a
 * user's jobs out one at a time and in order: a logoff's commit always runs before the next
 * logon's attach. Every job is idempotent; the worker re-checks the user-data record.
 */
import { z } from "zod";

const sessionRef = {
  tenantId: z.string().min(1),
  userId: z.string().min(1),
  sessionId: z.string().min(1),
};

export const userDataJobSchema = z.discriminatedUnion("kind", [
  /** Logon: the session's overlay on the user's disk (the desktop attaches it). */
  z.object({
    kind: z.literal("attach-user-data"),
    ...sessionRef,
    /**
     * False: the logon's claim found no VM on the desktop (no console), so there is nothing to
     * plug in and the job does not read the desktop. Absent: not known, the job looks.
     */
    vm: z.boolean().optional(),
  }),
  /** Logoff: the session's change becomes the user's next disk version and is shipped to DR. */
  z.object({
    kind: z.literal("commit-user-data"),
    ...sessionRef,
    /**
     * Sent again by the host once the desktop let go of the disk (the first one, at logoff, may
     * have found it still plugged in): another job, so the queue's deduplication keeps it.
     */
    after: z.literal("disk-released").optional(),
  }),
  /** A drill's session: its overlay is thrown away, the user's disk is left as it was. */
  z.object({ kind: z.literal("discard-user-data"), ...sessionRef }),
  /**
   * The tenant's resolution of a fork (on the user's group, so it runs between the user's
   * sessions); `sessionId` names the resolution, which commits the fork like a session would.
   */
  z.object({ kind: z.literal("resolve-fork"), ...sessionRef, forkId: z.string().min(1) }),
]);

export type UserDataJob = z.infer<typeof userDataJobSchema>;

export const userDataGroup = (job: Pick<UserDataJob, "tenantId" | "userId">) =>
  `${job.tenantId}#${job.userId}`;

export const userDataJobKey = (job: UserDataJob) =>
  `${job.kind}:${job.tenantId}:${job.sessionId}${"after" in job && job.after ? `:${job.after}` : ""}`;
