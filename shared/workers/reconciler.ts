import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import type { App } from "../app.ts";
import { defaultHostDeadlineMs, reconcile } from "../domain/reconcile.ts";
import { logger } from "../logger.ts";

/** Scheduled: desktops stuck for longer than any job should take get their job again. */
export const reconcilerHandler = (
  app: App,
  staleAfterMs = app.config.timing.reconcileStaleAfterMs ?? 15 * 60_000,
) =>
  middy()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .handler(async () => {
      const report = await reconcile(app.ports, staleAfterMs, {
        hostDeadlineMs: app.config.timing.hostDeadlineMs ?? defaultHostDeadlineMs,
      });
      logger.info("reconciled", { ...report });
      return report;
    });
