import { Logger } from "@aws-lambda-powertools/logger";

/** One structured logger; never log keys or request bodies (they may hold secrets). */
export const logger = new Logger({
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "pristine",
  logLevel: (process.env.POWERTOOLS_LOG_LEVEL as "INFO" | undefined) ?? "INFO",
});
