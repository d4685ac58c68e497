import { type App, regionDefaults } from "../app.ts";
import { runCloneJob } from "../domain/clone-jobs.ts";
import { logoffFromEvent } from "../domain/sessions.ts";
import { cloneJobSchema } from "../messages/clone-job.ts";
import { logoffEventSchema } from "../messages/logoff-event.ts";
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

export const logoffWorkerHandler = (app: App) =>
  sqsWorker("logoff-event", logoffEventSchema, (event) => logoffFromEvent(app.ports, event.detail), {
    metrics: app.metrics,
  });
