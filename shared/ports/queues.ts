/** The queues jobs and messages travel on (adapters: SQS). */
import type { CloneJob } from "../messages/clone-job.ts";
import type { ReplicationMessage } from "../messages/replication.ts";
import type { UserDataJob } from "../messages/user-data-job.ts";

export interface JobQueue {
  /** `delaySeconds` defers delivery (a job that must wait for a free slot). */
  send(jobs: CloneJob[], opts?: { delaySeconds?: number }): Promise<void>;
}

/** The FIFO user-data queue: one message group per (tenant, user), so a user's jobs never overlap. */
export interface UserDataJobQueue {
  send(jobs: UserDataJob[]): Promise<void>;
}

/** This region's replication queue (ship, apply, acks, drills). */
export interface ReplicationQueue {
  /** `delaySeconds` defers delivery (a step machine that waits between two looks). */
  send(messages: ReplicationMessage[], opts?: { delaySeconds?: number }): Promise<void>;
}
