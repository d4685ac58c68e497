/** `pristine profile set|list`: API URLs and keys, kept owner-only. */
import type { Command } from "commander";
import { type CliConfig, configPath, loadConfig, maskKey, type Profile, saveConfig } from "../config.ts";
import { UsageError } from "../errors.ts";
import { printJson, printLine, printTable } from "../output.ts";

interface SetFlags {
  url: string;
  key: string;
  drUrl?: string;
  default?: boolean;
}

function checkedUrl(flag: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`${flag} ${JSON.stringify(value)} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`${flag} must be http(s)`);
  return value.replace(/\/+$/, "");
}

/** Adds or replaces a profile; the first one, or one set with --default, becomes the default. */
export async function setProfile(name: string, profile: Profile, makeDefault: boolean): Promise<string> {
  const path = configPath(process.env);
  const config: CliConfig = await loadConfig(path);
  config.profiles[name] = profile;
  if (makeDefault || !config.defaultProfile || !config.profiles[config.defaultProfile])
    config.defaultProfile = name;
  await saveConfig(path, config);
  return path;
}

export function profileCommands(program: Command): void {
  const profile = program
    .command("profile")
    .description("API URLs and keys, by name (owner-only config file)");
  profile
    .command("set <name>")
    .description("add or replace a profile")
    .requiredOption("--url <url>", "the API's URL, e.g. http://127.0.0.1:8080")
    .requiredOption("--key <key>", "the API key (tenant or operator)")
    .option("--dr-url <url>", "the DR region's API (drills, failover, failback)")
    .option("--default", "use this profile when --profile is not given")
    .action(async (name: string, flags: SetFlags) => {
      const url = checkedUrl("--url", flags.url);
      const drUrl = flags.drUrl ? checkedUrl("--dr-url", flags.drUrl) : undefined;
      const path = await setProfile(
        name,
        { url, key: flags.key, ...(drUrl ? { drUrl } : {}) },
        !!flags.default,
      );
      if (!program.opts().json) printLine(`profile ${name} saved in ${path}`);
      else printJson({ profile: name, url, ...(drUrl ? { drUrl } : {}), key: maskKey(flags.key) });
    });
  profile
    .command("list")
    .description("the profiles (keys masked)")
    .action(async () => {
      const config = await loadConfig(configPath(process.env));
      const rows = Object.entries(config.profiles).map(([name, p]) => ({
        profile: name,
        default: name === config.defaultProfile,
        url: p.url,
        drUrl: p.drUrl,
        key: maskKey(p.key),
      }));
      if (program.opts().json) return printJson({ items: rows });
      printTable(
        ["profile", "default", "url", "DR url", "key"],
        rows.map((r) => [r.profile, r.default ? "yes" : "no", r.url, r.drUrl, r.key]),
      );
    });
}
