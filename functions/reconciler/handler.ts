import { createApp } from "../../shared/app.ts";
import { loadConfig } from "../../shared/config.ts";
import { reconcilerHandler } from "../../shared/workers/reconciler.ts";

export const handler = reconcilerHandler(createApp(loadConfig()));
