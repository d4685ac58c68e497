#!/usr/bin/env node
/**
 * `pristine`: the command line of the Pristine API (tenant and operator actions). Run from a clone
 * with `npx pristine ...`; the exit codes below are the contract with scripts.
 */
import { Command } from "commander";
import packageJson from "../package.json" with { type: "json" };
import { adminCommands } from "./commands/admin.ts";
import { drCommands } from "./commands/dr.ts";
import { imageCommands } from "./commands/images.ts";
import { poolCommands } from "./commands/pools.ts";
import { profileCommands } from "./commands/profile.ts";
import { quotaCommands } from "./commands/quotas.ts";
import { sessionCommands } from "./commands/sessions.ts";
import { storageCommands } from "./commands/storage.ts";
import { errorLine, exitCodeFor, exitCodes, oneLine } from "./errors.ts";

const epilog = `
Profiles: ~/.config/pristine/config.json (0600; PRISTINE_CONFIG moves it); PRISTINE_API_URL,
PRISTINE_API_KEY and PRISTINE_DR_API_URL override the profile's.

--json prints the API's JSON document on stdout and nothing else; --wait shows progress on stderr.

Exit codes:
  0  ok
  2  usage error (bad argument, unknown command, no or unsafe profile, a file
     that cannot be read or written)
  3  the API refused the request (4xx problem)
  4  server error (5xx) or the API could not be reached
  5  a --wait ended in failure or timed out
Errors are one line on stderr, e.g. "error: 404 not-found: pool p-123 does not exist".`;

export function buildProgram(): Command {
  const program = new Command("pristine")
    .description("Pristine: pools of non-persistent desktops on linked clones")
    .version(packageJson.version)
    .option("--profile <name>", "the profile to use (default: the default profile)")
    .option("--json", "print the API's JSON (one document on stdout)")
    .addHelpText("after", epilog)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`${oneLine(text)}\n`) });
  profileCommands(program);
  adminCommands(program);
  imageCommands(program);
  poolCommands(program);
  sessionCommands(program);
  storageCommands(program);
  quotaCommands(program);
  drCommands(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return exitCodes.ok;
  } catch (err) {
    const code = exitCodeFor(err);
    // Commander has already written its own message (or the help) to stderr.
    const fromCommander = (err as { code?: string }).code?.startsWith("commander.");
    if (!fromCommander) process.stderr.write(`${errorLine(err)}\n`);
    return code;
  }
}

// A reader that stops early (`pristine pools list | head -1`) is not an error of ours.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code !== "EPIPE") throw err;
  process.exit(process.exitCode ?? exitCodes.ok);
});
process.exitCode = await main(process.argv);
