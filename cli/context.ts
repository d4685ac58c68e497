/** What every command needs from the global options: the profile's API client and the output mode. */
import type { Command } from "commander";
import { seconds } from "./args.ts";
import { ApiClient } from "./client.ts";
import { configPath, loadConfig, resolveProfile } from "./config.ts";
import { printJson } from "./output.ts";
import { defaultTimeoutSeconds, type WaitOptions } from "./wait.ts";

export interface GlobalOptions {
  profile?: string;
  json?: boolean;
}

/** The primary region's API, or the DR region's (the profile's drUrl; its url when it has none). */
export type Region = "primary" | "dr";

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

export async function api(cmd: Command, region: Region = "primary"): Promise<ApiClient> {
  const { profile: name } = globals(cmd);
  const env = process.env;
  const fromEnvOnly = !name && env.PRISTINE_API_URL && env.PRISTINE_API_KEY;
  const config = fromEnvOnly ? { profiles: {} } : await loadConfig(configPath(env));
  const profile = resolveProfile(config, name, env);
  return new ApiClient(region === "dr" ? (profile.drUrl ?? profile.url) : profile.url, profile.key);
}

/** Prints the API's document with --json, or calls the human rendering. */
export function show<T>(cmd: Command, doc: T, human: (doc: T) => void): void {
  if (globals(cmd).json) printJson(doc);
  else human(doc);
}

export interface WaitFlags {
  wait?: boolean;
  timeout?: number;
}

export function waitOptions(what: string, flags: WaitFlags): WaitOptions {
  return { what, timeoutSeconds: flags.timeout ?? defaultTimeoutSeconds };
}

/** Adds --wait and --timeout to a command that starts long work. */
export function withWait(cmd: Command, what: string): Command {
  return cmd
    .option("--wait", `wait until ${what}, with progress on stderr`)
    .option(
      "--timeout <seconds>",
      `give up waiting after this long, exit 5 (default ${defaultTimeoutSeconds})`,
      seconds,
    );
}
