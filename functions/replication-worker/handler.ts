import { createApp } from "../../shared/app.ts";
import { loadConfig } from "../../shared/config.ts";
import { replicationWorkerHandler } from "../../shared/workers/dr-handlers.ts";

export const handler = replicationWorkerHandler(createApp(loadConfig()));
