import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, expect, it } from "vitest";
import { freePort, waitFor } from "../../local/emulators.ts";
import { guestCacheDir } from "../support/guest.ts";
import { startPristine } from "../support/pristine-process.ts";

const run = promisify(execFile);
const dataDir = await mkdtemp(join(tmpdir(), "pristine-e2e-"));
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await rm(dataDir, { recursive: true, force: true });
});

const drPort = await freePort();

async function start(port: number) {
  const started = await startPristine({
    PRISTINE_PORT: String(port),
    PRISTINE_DR_PORT: String(drPort),
    PRISTINE_DATA_DIR: dataDir,
    PRISTINE_GUEST_DIR: guestCacheDir,
  });
  children.push(started.child);
  return started;
}

it("npm start serves the API, stops every child on Ctrl-C, and finds its data again", async () => {
  const port = await freePort();
  const first = await start(port);
  // The banner comes once the DR region (started after the primary) is up too.
  await waitFor("the banner", async () => first.output().includes("Pristine is up"), 60_000);
  expect(first.output()).toContain(`http://127.0.0.1:${port}`);
  expect(first.output()).toContain(`http://127.0.0.1:${drPort}`);
  const operatorKey = (await readFile(join(dataDir, "operator-key"), "utf8")).trim();
  const created = await fetch(`http://127.0.0.1:${port}/v1/admin/tenants`, {
    method: "POST",
    headers: { authorization: `Bearer ${operatorKey}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "persisted" }),
  });
  expect(created.status).toBe(201);
  const { apiKey } = (await created.json()) as { apiKey: string };
  await waitFor("the tenant replicated to DR", async () => {
    const dr = await fetch(`http://127.0.0.1:${drPort}/v1/pools`, {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    return dr.status === 200;
  });

  first.child.kill("SIGINT");
  expect(await first.exited).toBe(0);
  // DynamoDB Local (a JVM child, started with -dbPath under the data dir) is gone with it.
  await expect(run("pgrep", ["-f", join(dataDir, "dynamodb")])).rejects.toMatchObject({ code: 1 });
  const second = await start(port);
  const pools = await fetch(`http://127.0.0.1:${port}/v1/pools`, {
    headers: { authorization: `Bearer ${apiKey}` },
  });
  expect(pools.status).toBe(200);
  second.child.kill("SIGINT");
  expect(await second.exited).toBe(0);
});

it.each(["SIGTERM", "SIGINT"] as const)(
  "%s sent to the npm start process alone (as a process manager does) stops everything, with a final line",
  async (signal) => {
    const dir = await mkdtemp(join(tmpdir(), "pristine-e2e-signal-"));
    const port = await freePort();
    // `npm start` itself, in its own process group: the signal reaches npm only, not its children.
    const child = spawn("npm", ["start"], {
      env: {
        ...process.env,
        PRISTINE_PORT: String(port),
        PRISTINE_DR_PORT: String(await freePort()),
        PRISTINE_DATA_DIR: dir,
        PRISTINE_HYPERVISOR: "none",
      },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    children.push(child);
    let output = "";
    for (const stream of [child.stdout, child.stderr]) stream?.on("data", (d: Buffer) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    try {
      await waitFor("the banner", async () => output.includes("Pristine is up"), 120_000, 250);
      child.kill(signal);
      await exited;
      expect(output).toContain("Pristine stopped.");
      await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
      await expect(run("pgrep", ["-f", dir])).rejects.toMatchObject({ code: 1 });
    } finally {
      if (child.pid) await run("pkill", ["-KILL", "-f", dir]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  },
  180_000,
);
