import { createApp } from "../../shared/app.ts";
import { loadConfig } from "../../shared/config.ts";
import { logoffWorkerHandler } from "../../shared/workers/handlers.ts";

export const handler = logoffWorkerHandler(createApp(loadConfig()));
