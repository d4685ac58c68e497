/** Starts a region's workers as their own process (`local/agent.ts`), as a host agent runs them. */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Region } from "../../local/region.ts";
import { configEnvironment } from "../../shared/config.ts";

const agentEntry = fileURLToPath(new URL("../../local/agent.ts", import.meta.url));

export interface AgentProcess {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the exit code (137 for a crash at a checkpoint). */
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

export function startAgent(
  region: Region,
  workers: string[],
  env: Record<string, string> = {},
  opts: { concurrency?: number; nodeArgs?: string[] } = {},
): AgentProcess {
  const args = [...(opts.nodeArgs ?? []), agentEntry, "--workers", workers.join(",")];
  if (opts.concurrency !== undefined) args.push("--concurrency", String(opts.concurrency));
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      ...configEnvironment(region.app.config),
      POWERTOOLS_LOG_LEVEL: process.env.AGENT_LOG_LEVEL ?? "WARN",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    output: () => output,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
