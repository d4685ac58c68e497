import { createApp } from "../../shared/app.ts";
import { loadConfig } from "../../shared/config.ts";
import { apiHandler } from "../../shared/http/api.ts";

export const handler = apiHandler(createApp(loadConfig()));
