import { createApp } from "../../shared/app.ts";
import { loadConfig } from "../../shared/config.ts";
import { userDataWorkerHandler } from "../../shared/workers/dr-handlers.ts";

export const handler = userDataWorkerHandler(createApp(loadConfig()));
