/**
 * Profiles: an API URL and key per name, in a file only its owner may read (0600, in a 0700
 * folder). `PRISTINE_CONFIG` moves the file; `PRISTINE_API_URL` / `PRISTINE_API_KEY` override the
 * chosen profile. A file others can read or write is refused: it holds API keys.
 */
import { chmod, mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { UsageError } from "./errors.ts";

export interface Profile {
  url: string;
  key: string;
  /** The DR region's API (drills, failover, failback); the profile's url when unset. */
  drUrl?: string;
}

export interface CliConfig {
  defaultProfile?: string;
  profiles: Record<string, Profile>;
}

export type Env = Record<string, string | undefined>;

export function configPath(env: Env): string {
  return env.PRISTINE_CONFIG || join(homedir(), ".config", "pristine", "config.json");
}

/** Why a config file's mode or owner is unsafe, or undefined when it is owner-only. */
export function unsafePermissions(
  path: string,
  file: { mode: number; uid: number },
  myUid: number | undefined,
): string | undefined {
  if (myUid !== undefined && file.uid !== myUid)
    return `${path} belongs to another user (uid ${file.uid}); it holds API keys: use a file of your own`;
  const loose = file.mode & 0o077;
  if (loose === 0) return undefined;
  const mode = (file.mode & 0o777).toString(8).padStart(4, "0");
  return `${path} has permissions ${mode}, readable or writable by others; it holds API keys: chmod 600 ${path}`;
}

/** A key as `profile list` shows it: never in full. */
export function maskKey(key: string): string {
  return key.length >= 12 ? `****${key.slice(-4)}` : "****";
}

export async function loadConfig(path: string): Promise<CliConfig> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { profiles: {} };
    throw err;
  }
  const unsafe = unsafePermissions(path, info, process.getuid?.());
  if (unsafe) throw new UsageError(`refusing the config file: ${unsafe}`);
  try {
    const parsed = JSON.parse(await readFile(path, "utf8")) as Partial<CliConfig>;
    return { ...parsed, profiles: parsed.profiles ?? {} };
  } catch (err) {
    throw new UsageError(`${path} is not a valid config file: ${(err as Error).message}`);
  }
}

/** Writes the whole file (0600) through a temporary one, creating its folder (0700) if needed. */
export async function saveConfig(path: string, config: CliConfig): Promise<void> {
  const folder = dirname(path);
  await mkdir(folder, { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600, flag: "w" });
  await chmod(temporary, 0o600);
  await rename(temporary, path);
}

/** The profile a command talks with: --profile, else the default one, then the environment on top. */
export function resolveProfile(config: CliConfig, name: string | undefined, env: Env): Profile {
  const chosen = name ?? config.defaultProfile;
  const profile = chosen ? config.profiles[chosen] : undefined;
  if (name && !profile)
    throw new UsageError(
      `no profile ${name}; known: ${Object.keys(config.profiles).join(", ") || "none"} (pristine profile set ${name} --url ... --key ...)`,
    );
  const url = env.PRISTINE_API_URL || profile?.url;
  const key = env.PRISTINE_API_KEY || profile?.key;
  if (!url || !key)
    throw new UsageError(
      "no API URL and key: run `pristine profile set <name> --url <url> --key <key>`, or set PRISTINE_API_URL and PRISTINE_API_KEY",
    );
  const drUrl = env.PRISTINE_DR_API_URL || profile?.drUrl;
  return { url: url.replace(/\/+$/, ""), key, ...(drUrl ? { drUrl: drUrl.replace(/\/+$/, "") } : {}) };
}
