import { type App, regionDefaults } from "../app.ts";
import { runCloneJob } from "../domain/clone-jobs.ts";
import { sessionEventReceived } from "../domain/session-timeouts.ts";
import { logoffFromEvent } from "../domain/sessions.ts";
import { cloneJobSchema } from "../messages/clone-job.ts";
import { desktopEventSchema } from "../messages/session-event.ts";
import { sqsWorker } from "./sqs-batch.ts";

export const cloneWorkerHandler = (app: App) =>
  sqsWorker(
    "clone-job",
    cloneJobSchema,
    (job, record) =>
      runCloneJob(
        app.ports,
        job,
        app.config.worker,
        Number(record.attributes.ApproximateReceiveCount),
        regionDefaults(app),
      ),
    { metrics: app.metrics },
  );

/** The desktop agents' events: logoff, and the disconnect, reconnect and idle reports. */
export const logoffWorkerHandler = (app: App) =>
  sqsWorker(
    "desktop-event",
    desktopEventSchema,
    (event) =>
      event["detail-type"] === "Session Logoff"
        ? logoffFromEvent(app.ports, event.detail)
        : sessionEventReceived(app.ports, event),
    { metrics: app.metrics },
  );
