/**
 * `npm start`: the whole of Pristine on this machine, in one process tree — DynamoDB Local,
 * fauxqs, the API and the workers — with its state under PRISTINE_DATA_DIR.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { buildGuestImage, defaultGuestDir } from "../guest/build.ts";
import { ensureConsole } from "../web/build.ts";
import { startDynamoDbLocal, startFauxqsProcess } from "./emulators.ts";
import { preflight } from "./preflight.ts";
import { startRegion } from "./region.ts";

const { values: flags } = parseArgs({ options: { "in-memory": { type: "boolean", default: false } } });
const port = Number(process.env.PRISTINE_PORT ?? 8080);
const drPort = Number(process.env.PRISTINE_DR_PORT ?? 8081);
const primaryName = process.env.PRISTINE_REGION_NAME ?? "primary";
const drName = process.env.PRISTINE_DR_REGION_NAME ?? "dr";
const dataDir = resolve(process.env.PRISTINE_DATA_DIR ?? "./.pristine");
const inMemory = flags["in-memory"] ?? false;
const guestDir = defaultGuestDir();
// Desktops are QEMU VMs unless told otherwise (none: their VMs run elsewhere).
const hypervisor = process.env.PRISTINE_HYPERVISOR === "none" ? "none" : "qemu";

async function operatorKey(): Promise<{ key: string; origin: string }> {
  if (process.env.PRISTINE_OPERATOR_KEY)
    return { key: process.env.PRISTINE_OPERATOR_KEY, origin: "PRISTINE_OPERATOR_KEY" };
  const file = join(dataDir, "operator-key");
  const existing = await readFile(file, "utf8").catch(() => undefined);
  if (existing?.trim()) return { key: existing.trim(), origin: file };
  const key = `prs_op_${randomBytes(32).toString("base64url")}`;
  // Kept beside the local data (mode 600) so a restart finds the same key; never in the repo.
  await writeFile(file, `${key}\n`, { mode: 0o600 });
  return { key, origin: `${file} (generated)` };
}

async function main() {
  await preflight(console.log, { vms: hypervisor === "qemu" });
  await mkdir(dataDir, { recursive: true });
  await mkdir(join(dataDir, "imports"), { recursive: true });
  const { key, origin } = await operatorKey();
  // The web console's files (GET /console/), built from web/src when missing or stale.
  await ensureConsole((line) => console.log(`[web] ${line}`));
  if (hypervisor === "qemu") {
    // The desktop guest (kernel, initramfs, golden disk with the desktop agent), built once.
    const guest = await buildGuestImage({
      cacheDir: guestDir,
      log: (line) => console.log(`[guest] ${line}`),
    });
    if (guest.built) console.log(`[guest] built in ${guest.dir}`);
  }
  const vms = { hypervisor, guestDir } as const;
  const stoppers: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stoppers.reverse()) await stop().catch(() => {});
  };
  let stopping = false;
  // A terminal's Ctrl-C, a process manager's SIGTERM (npm passes it on: the script execs node) or
  // a closed terminal: each stops every child, then says so.
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping Pristine ...`);
    stopAll().then(() => {
      console.log("Pristine stopped.");
      process.exit(0);
    });
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, onSignal);

  try {
    const dynamo = await startDynamoDbLocal(inMemory ? {} : { dbPath: join(dataDir, "dynamodb") });
    stoppers.push(dynamo.stop);
    const fauxqs = await startFauxqsProcess(inMemory ? {} : { dataDir: join(dataDir, "fauxqs") });
    stoppers.push(fauxqs.stop);
    const primary = await startRegion({
      name: primaryName,
      dynamodbEndpoint: dynamo.endpoint,
      sqsEndpoint: fauxqs.endpoint,
      dataDir,
      operatorKey: key,
      port,
      peer: { name: drName },
      ...vms,
    });
    stoppers.push(primary.stop);
    // The DR region: its own table, queues, bucket and data dir, on the same emulators.
    const dr = await startRegion({
      name: drName,
      dynamodbEndpoint: dynamo.endpoint,
      sqsEndpoint: fauxqs.endpoint,
      dataDir: join(dataDir, "dr"),
      importRoots: [join(dataDir, "imports")],
      operatorKey: key,
      port: drPort,
      peer: { name: primaryName },
      ...vms,
    });
    stoppers.push(dr.stop);
    console.log(
      [
        "",
        `Pristine is up (${inMemory ? "in memory" : "persistent"})`,
        `  API            ${primary.apiUrl}    (GET ${primary.apiUrl}/health)`,
        `  web console    ${primary.apiUrl}/console/    (DR: ${dr.apiUrl}/console/)`,
        `  region         ${primary.name}`,
        `  DR API         ${dr.apiUrl}    (region ${dr.name}, data under ${join(dataDir, "dr")})`,
        `  operator key   from ${origin}`,
        `  data dir       ${dataDir}`,
        `  desktops       ${hypervisor === "qemu" ? `QEMU VMs (guest: ${guestDir}/desktop.qcow2)` : "disks only (PRISTINE_HYPERVISOR=none)"}`,
        `  DynamoDB Local ${dynamo.endpoint}`,
        `  fauxqs (SQS/S3) ${fauxqs.endpoint}`,
        "Ctrl-C stops everything.",
        "",
      ].join("\n"),
    );
  } catch (err) {
    console.error((err as Error).message);
    await stopAll();
    process.exit(1);
  }
}

await main();
