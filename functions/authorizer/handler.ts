import { createApp } from "../../shared/app.ts";
import { loadConfig } from "../../shared/config.ts";
import { authorizerHandler } from "../../shared/http/authorizer.ts";

export const handler = authorizerHandler(createApp(loadConfig()));
