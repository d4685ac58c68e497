/** `npm start` (local/start.ts) as a child process of a test, and Debian's chromium for page tests. */
import { type ChildProcess, spawn } from "node:child_process";
import { chromium } from "playwright-core";
import { waitFor } from "../../local/emulators.ts";

export interface PristineProcess {
  child: ChildProcess;
  /** What it printed so far (stdout and stderr). */
  output(): string;
  exited: Promise<number | null>;
}

/** Starts local/start.ts with these environment variables and waits for its banner. */
export async function startPristine(
  env: Record<string, string>,
  timeoutMs = 120_000,
): Promise<PristineProcess> {
  const child = spawn(process.execPath, ["local/start.ts"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  for (const stream of [child.stdout, child.stderr])
    stream?.on("data", (d: Buffer) => {
      output += d.toString();
    });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  await waitFor("npm start's banner", async () => output.includes("Pristine is up"), timeoutMs, 250).catch(
    (err: Error) => {
      child.kill("SIGINT");
      throw new Error(`${err.message}\n${output.slice(-3000)}`);
    },
  );
  return { child, output: () => output, exited };
}

export const chromiumPath = "/usr/bin/chromium";

/** Headless chromium without its background traffic (this machine's network is closed). */
export const launchChromium = (profileDir: string) =>
  chromium.launchPersistentContext(profileDir, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1360, height: 900 },
  });
