import { createApp } from "../../shared/app.ts";
import { loadConfig } from "../../shared/config.ts";
import { cloneWorkerHandler } from "../../shared/workers/handlers.ts";

export const handler = cloneWorkerHandler(createApp(loadConfig()));
