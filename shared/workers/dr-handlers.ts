import type { App } from "../app.ts";
import { notifyFailover, runFailback, setFailover } from "../domain/dr.ts";
import { runDrillStep } from "../domain/drill.ts";
import { runForkResolution } from "../domain/fork-resolution.ts";
import {
  readinessReportReceived,
  readinessSettings,
  sampleReadiness,
  verifyReadiness,
} from "../domain/readiness.ts";
import { applyConfig, shipConfig } from "../domain/replication-config.ts";
import { attachUserData, commitUserData, discardUserData } from "../domain/user-data.ts";
import { applyUserData, shipUserData, userDataApplied } from "../domain/user-data-replication.ts";
import { type ReplicationMessage, replicationMessageSchema } from "../messages/replication.ts";
import { type UserDataJob, userDataJobSchema } from "../messages/user-data-job.ts";
import { sqsWorker } from "./sqs-batch.ts";

export function runUserDataJob(app: App, job: UserDataJob): Promise<string> {
  switch (job.kind) {
    case "attach-user-data":
      return attachUserData(app.ports, job);
    case "commit-user-data":
      return commitUserData(app.ports, job);
    case "discard-user-data":
      return discardUserData(app.ports, job);
    case "resolve-fork":
      return runForkResolution(app.ports, job);
  }
}

/** FIFO: a failed job fails the rest of its user's group in the batch, keeping the user's order. */
export const userDataWorkerHandler = (app: App) =>
  sqsWorker("user-data-job", userDataJobSchema, (job) => runUserDataJob(app, job), {
    fifo: true,
    metrics: app.metrics,
  });

export function runReplicationMessage(app: App, m: ReplicationMessage): Promise<string> {
  const ports = app.ports;
  switch (m.kind) {
    case "ship-config":
      return shipConfig(ports, m);
    case "apply-config":
      return applyConfig(ports, m);
    case "ship-user-data":
      return shipUserData(ports, m);
    case "apply-user-data":
      return applyUserData(ports, m);
    case "user-data-applied":
      return userDataApplied(ports, m);
    case "set-failover":
      return setFailover(ports, m.tenantId, m.failedOver, m.epoch);
    case "notify-failover":
      return notifyFailover(ports, m.tenantId, m.failedOver, m.epoch);
    case "run-failback":
      return runFailback(ports, m.tenantId);
    case "run-drill":
      return runDrillStep(ports, m, app.config.defaultDatastore);
    case "sample-readiness":
      return sampleReadiness(ports, m, readinessSettings(app.config.timing));
    case "verify-readiness":
      return verifyReadiness(ports, m, readinessSettings(app.config.timing));
    case "readiness-report":
      return readinessReportReceived(ports, m);
  }
}

export const replicationWorkerHandler = (app: App) =>
  sqsWorker("replication", replicationMessageSchema, (m) => runReplicationMessage(app, m), {
    metrics: app.metrics,
  });
