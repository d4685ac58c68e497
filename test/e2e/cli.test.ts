/**
 * The `pristine` CLI against `npm start` (disks only): a tenant's story told with the CLI as a
 * child process, its --json documents checked against the API's own answers, its exit codes, its
 * config file's permissions, and its one retry with the same Idempotency-Key (against a stub).
 */
import { type ChildProcess, execFile } from "node:child_process";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, waitFor } from "../../local/emulators.ts";
import { startPristine } from "../support/pristine-process.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const root = await mkdtemp(join(tmpdir(), "pristine-cli-e2e-"));
const dataDir = join(root, "data");
const configFile = join(root, "config", "pristine", "config.json");
const children: ChildProcess[] = [];
afterAll(async () => {
  // Ctrl-C, as a person stops npm start: it stops its children (DynamoDB Local's JVM) too. SIGKILL
  // would leave them behind.
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const exited = new Promise((resolve) => c.once("exit", resolve));
    c.kill("SIGINT");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 30_000).unref())]);
    if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  }
  await rm(root, { recursive: true, force: true });
}, 60_000);

/** The environment of a CLI run: no profile variables of the developer's shell leak in. */
function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PRISTINE_CONFIG: configFile, ...extra };
  for (const name of ["PRISTINE_API_URL", "PRISTINE_API_KEY", "PRISTINE_DR_API_URL"])
    if (!(name in extra)) delete env[name];
  return env;
}

function cli(args: string[], extra: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["cli/main.ts", ...args], { env: cliEnv(extra) }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A run that must succeed, with --json: its one stdout document. */
async function json<T = any>(args: string[]): Promise<T> {
  const run = await cli(["--json", ...args]);
  expect(run, `pristine ${args.join(" ")}: ${run.stderr}`).toMatchObject({ code: 0 });
  return JSON.parse(run.stdout) as T;
}

const stderrLines = (run: Run) => run.stderr.split("\n").filter((l) => l.trim() !== "");

describe("against npm start", () => {
  let api = "";
  let drApi = "";
  let operatorKey = "";
  let tenantKey = "";
  let poolId = "";

  beforeAll(async () => {
    const [port, drPort] = [await freePort(), await freePort()];
    api = `http://127.0.0.1:${port}`;
    drApi = `http://127.0.0.1:${drPort}`;
    const started = await startPristine({
      PRISTINE_PORT: String(port),
      PRISTINE_DR_PORT: String(drPort),
      PRISTINE_DATA_DIR: dataDir,
      PRISTINE_HYPERVISOR: "none",
      POWERTOOLS_LOG_LEVEL: "WARN",
    });
    children.push(started.child);
    operatorKey = (await readFile(join(dataDir, "operator-key"), "utf8")).trim();
  }, 120_000);

  const apiGet = async (path: string, key = tenantKey, base = api) => {
    const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    return (await res.json()) as any;
  };

  it("saves profiles in an owner-only file and never lists a key in full", async () => {
    const set = await cli([
      "profile",
      "set",
      "operator",
      "--url",
      api,
      "--dr-url",
      drApi,
      "--key",
      operatorKey,
    ]);
    expect(set.code).toBe(0);
    expect((await stat(configFile)).mode & 0o777).toBe(0o600);
    expect((await stat(join(root, "config", "pristine"))).mode & 0o777).toBe(0o700);
    const list = await cli(["profile", "list"]);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain("operator");
    expect(list.stdout).not.toContain(operatorKey);
    expect(JSON.stringify(await json(["profile", "list"]))).not.toContain(operatorKey);
  });

  it("refuses a config file others can read, in one line, exit 2", async () => {
    const loose = join(root, "loose", "config.json");
    await mkdir(join(root, "loose"), { recursive: true });
    await copyFile(configFile, loose);
    await chmod(loose, 0o644);
    const run = await cli(["pools", "list"], { PRISTINE_CONFIG: loose });
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(stderrLines(run)).toHaveLength(1);
    expect(run.stderr).toMatch(/^error: refusing the config file: .*0644.*chmod 600/);
  });

  it("tells a tenant's story: tenant, image, pool, logon, logoff, storage, drill", async () => {
    const tenant = await json([
      "--profile",
      "operator",
      "tenants",
      "create",
      "acme",
      "--save-profile",
      "acme",
    ]);
    expect(tenant.apiKey).toMatch(/^prs_/);
    tenantKey = tenant.apiKey;
    const acme = ["--profile", "acme"];

    const image = await json([...acme, "images", "create", "golden"]);
    const version = await json([...acme, "images", "publish", image.imageId, "--blank", "64", "--wait"]);
    expect(version).toMatchObject({ version: 1, state: "READY" });
    expect((await apiGet(`/v1/images/${image.imageId}`)).versions[0].state).toBe("READY");

    const pool = await json([
      ...acme,
      "pools",
      "create",
      "call-center",
      "--image",
      image.imageId,
      "--size",
      "3",
      "--wait",
    ]);
    poolId = pool.poolId;
    expect(pool.desktopCounts.AVAILABLE).toBe(3);
    // The same numbers as the API's, for the same pool: as JSON and in the table.
    const fromApi = await apiGet(`/v1/pools/${poolId}`);
    expect((await json([...acme, "pools", "get", poolId])).desktopCounts).toEqual(fromApi.desktopCounts);
    const table = await cli([...acme, "pools", "get", poolId]);
    expect(table.stdout).toMatch(
      new RegExp(`^desktops: +AVAILABLE ${fromApi.desktopCounts.AVAILABLE}$`, "m"),
    );
    const desktops = await json([...acme, "pools", "desktops", poolId]);
    expect(desktops.items.map((d: any) => d.desktopId).sort()).toEqual(
      (await apiGet(`/v1/pools/${poolId}/desktops`)).items.map((d: any) => d.desktopId).sort(),
    );

    const session = await json([...acme, "logon", poolId, "alice"]);
    expect(session).toMatchObject({ userId: "alice", state: "ACTIVE", poolId });
    expect((await json([...acme, "sessions", "get", session.sessionId])).state).toBe("ACTIVE");
    const ended = await json([...acme, "logoff", session.sessionId]);
    expect(ended).toMatchObject({ state: "ENDED", endedBy: "api" });

    const storage = await json([...acme, "storage"]);
    const storageFromApi = await apiGet("/v1/storage");
    expect(storage.total.desktops).toBe(3);
    expect(storage.total.provisionedBytes).toBe(storageFromApi.total.provisionedBytes);
    expect(storage.pools.map((p: any) => p.poolId)).toEqual([poolId]);

    await waitFor("the pool replicated to DR", async () =>
      (await apiGet("/v1/dr/replication", tenantKey, drApi)).dr.standbyPools.includes(poolId),
    );
    const drill = await json([...acme, "drills", "start", poolId, "--wait", "--timeout", "60"]);
    expect(drill).toMatchObject({ state: "SUCCEEDED", phase: "DONE", pools: [poolId] });
    expect(await apiGet(`/v1/dr/drills/${drill.drillId}`, tenantKey, drApi)).toMatchObject({
      state: "SUCCEEDED",
    });

    const readiness = await json([...acme, "replication", "readiness"]);
    const readinessFromApi = await apiGet("/v1/dr/readiness");
    expect(readiness).toMatchObject({ region: readinessFromApi.region, periodMs: readinessFromApi.periodMs });
    const shown = await cli([...acme, "replication", "readiness"]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/current RPO/);

    // No failover happened: no forks; resolving one that does not exist is a refusal.
    expect(await json([...acme, "replication", "forks"])).toEqual([]);
    const noFork = await cli([...acme, "replication", "resolve-fork", "fork-0", "--keep", "current"]);
    expect(noFork.code).toBe(3);
    expect(noFork.stderr).toMatch(/^error: 404 not-found: fork fork-0/);
    const badKeep = await cli([...acme, "replication", "resolve-fork", "fork-0", "--keep", "both"]);
    expect(badKeep.code).toBe(2);
    expect(stderrLines(badKeep)).toHaveLength(1);
  });

  it("exits 2 on a bad argument, 3 on a refusal, 4 when unreachable: one line on stderr each", async () => {
    const acme = ["--profile", "acme"];
    const bad = await cli([...acme, "pools", "create", "x", "--image", "img-1", "--size", "0"]);
    expect(bad).toMatchObject({ code: 2, stdout: "" });
    expect(stderrLines(bad)).toEqual(["error: size: Too small: expected number to be >=1"]);
    const notANumber = await cli([...acme, "pools", "resize", poolId, "three"]);
    expect(notANumber.code).toBe(2);
    expect(stderrLines(notANumber)).toHaveLength(1);
    const unknown = await cli(["pools", "craete"]);
    expect(unknown.code).toBe(2);
    expect(stderrLines(unknown)).toHaveLength(1);

    const refused = await cli([...acme, "pools", "get", "pool-nothere"]);
    expect(refused).toMatchObject({ code: 3, stdout: "" });
    expect(stderrLines(refused)).toHaveLength(1);
    expect(refused.stderr).toMatch(/^error: 404 not-found: .*pool-nothere/);
    const forbidden = await cli(["--profile", "operator", "pools", "list"]);
    expect(forbidden.code).toBe(3);
    expect(forbidden.stderr).toMatch(/^error: 403 forbidden: /);

    const closed = await cli(["pools", "list"], {
      PRISTINE_API_URL: `http://127.0.0.1:${await freePort()}`,
      PRISTINE_API_KEY: "k",
    });
    expect(closed.code).toBe(4);
    expect(stderrLines(closed)).toHaveLength(1);
    expect(closed.stderr).toMatch(/^error: cannot reach /);
  });

  it("exits 5 when a --wait runs out of time", async () => {
    const run = await cli(["--profile", "acme", "drills", "start", poolId, "--wait", "--timeout", "0.001"]);
    expect(run.code).toBe(5);
    expect(run.stdout).toBe("");
    expect(run.stderr.trim().split("\n").at(-1)).toMatch(
      /^error: timed out after 0.001 s waiting for drill /,
    );
  });
});

describe("without a server", () => {
  it("npx pristine runs the repository's own bin, offline", async () => {
    const run = await new Promise<Run>((resolve) =>
      execFile("npx", ["--offline", "pristine", "--help"], { env: cliEnv() }, (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
      ),
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("Usage: pristine");
    expect(run.stdout).toContain("5  a --wait ended in failure or timed out");
  });

  it("cli/pristine.mjs runs from any folder, with the Node on PATH outside the clone (20 in CI)", async () => {
    // PATH without the clone's node_modules/.bin: `node` is the machine's own, as in a user's shell.
    const path = (process.env.PATH ?? "").split(":").filter((p) => !p.includes("node_modules"));
    const run = await new Promise<Run>((resolve) =>
      execFile(
        join(process.cwd(), "cli", "pristine.mjs"),
        ["pools", "get", "pool-x"],
        {
          cwd: tmpdir(),
          env: {
            ...cliEnv(),
            PATH: path.join(":"),
            PRISTINE_API_URL: "http://127.0.0.1:9",
            PRISTINE_API_KEY: "k",
          },
        },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
      ),
    );
    // It got as far as calling the API (nothing listens on port 9): the CLI ran, on Node 24.
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(run.stderr).toMatch(/^error: .*127\.0\.0\.1:9/);
    expect(run.code).toBe(4);
  });

  it("retries a POST once after a 503 with Retry-After, with the same Idempotency-Key", async () => {
    const seen: IncomingHttpHeaders[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      if (seen.length === 1) {
        res.writeHead(503, { "retry-after": "0", "content-type": "application/problem+json" });
        res.end(
          JSON.stringify({
            type: "https://pristine.dev/problems/try-again",
            title: "Try again",
            status: 503,
          }),
        );
        return;
      }
      res.writeHead(201, { "content-type": "application/json" });
      res.end(JSON.stringify({ imageId: "img-1", name: "golden", latestVersion: 0, createdAt: "now" }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as { port: number };
    try {
      const run = await cli(["--json", "images", "create", "golden"], {
        PRISTINE_API_URL: `http://127.0.0.1:${port}`,
        PRISTINE_API_KEY: "key",
      });
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ imageId: "img-1" });
      expect(seen).toHaveLength(2);
      expect(seen[0]?.["idempotency-key"]).toMatch(/^[0-9a-f-]{36}$/);
      expect(seen[1]?.["idempotency-key"]).toBe(seen[0]?.["idempotency-key"]);
      expect(seen[0]?.authorization).toBe("Bearer key");
    } finally {
      server.close();
    }
  });

  it("retries once after a connection reset, then reports a server failure (exit 4)", async () => {
    let requests = 0;
    const server = createServer((req) => {
      requests += 1;
      req.socket.destroy();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as { port: number };
    try {
      const run = await cli(["images", "list"], {
        PRISTINE_API_URL: `http://127.0.0.1:${port}`,
        PRISTINE_API_KEY: "key",
      });
      expect(run.code).toBe(4);
      expect(requests).toBe(2);
      expect(stderrLines(run)).toHaveLength(1);
    } finally {
      server.close();
    }
  });
});
