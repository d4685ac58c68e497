import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import type { App } from "../app.ts";
import { readinessSettings, startReadinessChecks } from "../domain/readiness.ts";
import { defaultHostDeadlineMs, reconcile } from "../domain/reconcile.ts";
import { logger } from "../logger.ts";

/** The input of the reconciler's second schedule (the DR readiness checks, once per period). */
export interface ScheduledTask {
  task?: "readiness";
}

/**
 * Scheduled: desktops stuck for longer than any job should take get their job again. On its second
 * rule (`{"task":"readiness"}`, once per readiness period) it starts the tenants' DR readiness checks.
 */
export const reconcilerHandler = (
  app: App,
  staleAfterMs = app.config.timing.reconcileStaleAfterMs ?? 15 * 60_000,
) =>
  middy<ScheduledTask | undefined>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .handler(async (event) => {
      if (event?.task === "readiness") {
        const started = await startReadinessChecks(app.ports, readinessSettings(app.config.timing).periodMs);
        logger.info("readiness checks started", { ...started });
        return started;
      }
      const report = await reconcile(app.ports, staleAfterMs, {
        hostDeadlineMs: app.config.timing.hostDeadlineMs ?? defaultHostDeadlineMs,
        datastoreIds: [app.config.defaultDatastore.datastoreId],
      });
      logger.info("reconciled", { ...report });
      return report;
    });
