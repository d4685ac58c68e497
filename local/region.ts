/**
 * One region of Pristine on the emulators: its table, queues, API server and in-process workers,
 * wired exactly as the Lambdas are in AWS. `npm start` and the integration tests both use it.
 */
import { join } from "node:path";
import { documentClient, ensureTable } from "../shared/adapters/dynamodb/client.ts";
import { sendJson, sqsClient } from "../shared/adapters/sqs/queue.ts";
import { type App, createApp } from "../shared/app.ts";
import {
  defaultDatastoreOf,
  type PristineConfig,
  storageLayout,
  type TransferSettings,
  timingFromEnv,
  vmRunDir,
} from "../shared/config.ts";
import { defaultWorkerSettings, type WorkerSettings } from "../shared/domain/clone-jobs.ts";
import { forbidden } from "../shared/domain/errors.ts";
import type { QuotaLimits } from "../shared/domain/model.ts";
import { readinessSettings } from "../shared/domain/readiness.ts";
import { authenticate, hashApiKey } from "../shared/domain/tenants.ts";
import { apiHandler } from "../shared/http/api.ts";
import { errorToResponse, problem, problemResponse, validationProblem } from "../shared/http/problem.ts";
import { desktopEventSchema } from "../shared/messages/session-event.ts";
import { quotaDefaultsFromEnv } from "../shared/quota-config.ts";
import { cloneWorkerHandler, logoffWorkerHandler } from "../shared/workers/handlers.ts";
import { reconcilerHandler } from "../shared/workers/reconciler.ts";
import { startApiServer } from "./api-server.ts";
import { type DrResources, drWorkers, ensureDrResources, type PeerOptions } from "./dr-region.ts";
import { type LocalHost, startLocalHost } from "./host.ts";
import { invokeLocally } from "./lambda-context.ts";
import { ensureQueueWithDlq, type QueueRef } from "./queues.ts";
import { type Poller, type PollerOptions, startSqsPoller } from "./sqs-poller.ts";

export interface RegionOptions {
  name: string;
  dynamodbEndpoint: string;
  sqsEndpoint: string;
  dataDir: string;
  operatorKey: string;
  port?: number;
  /** Prefix of the table and queue names, so several regions (or test files) share one emulator. */
  resourcePrefix?: string;
  importRoots?: string[];
  /** Parallel pollers for the clone-jobs queue (Lambda concurrency). */
  cloneWorkerConcurrency?: number;
  /** How often the reconciler runs (the EventBridge schedule in AWS); 0 turns it off. */
  reconcileEveryMs?: number;
  /**
   * How often the DR readiness checks start (the reconciler's second schedule in AWS); 0 turns them
   * off. By default once per readiness period (PRISTINE_READINESS_PERIOD_MS, 15 minutes).
   */
  readinessEveryMs?: number;
  /** Each tenant's default quotas (over PRISTINE_QUOTA_*, then the built-in defaults). */
  quotas?: Partial<QuotaLimits>;
  /** Capacity of the default local datastore (`ds-default`). */
  defaultDatastoreCapacity?: { capacityGiB: number; overcommit: number };
  worker?: Partial<WorkerSettings>;
  /** The DR peer region (user data, images and configuration are replicated to it). */
  peer?: PeerOptions;
  userDataSizeBytes?: number;
  /** How files travel through the replication buckets (tests make parts and temporary storage small). */
  transfer?: TransferSettings;
  /**
   * The workers that run in-process (all by default). Tests that deliver jobs themselves, or run
   * a worker as a separate process, leave theirs out.
   */
  workers?: WorkerName[];
  /**
   * How long a received message stays hidden (every queue of the region): a worker that dies with
   * a message gets it redelivered after this long. Tests that kill workers make it short.
   */
  queueVisibilitySeconds?: number;
  /** Fault injection: the in-process workers get every batch twice, at once (SQS's at-least-once). */
  duplicateDeliveries?: boolean;
  /**
   * `qemu`: the region's datastore has a host, run in-process, whose desktops are QEMU VMs
   * (`guestDir` holds the guest's boot files, made by `npm run image:build`). `none` (the default
   * here): desktops are AVAILABLE once their disk exists, their VMs run elsewhere.
   */
  hypervisor?: "qemu" | "none";
  guestDir?: string;
  /** The QEMU the local host runs (tests point it at a missing one). */
  qemuBinary?: string;
  /** How often the local host heartbeats (5 s by default). */
  hostHeartbeatMs?: number;
  /** Per-invocation time limits of the in-process workers (Lambda's function timeouts). */
  functionTimeoutsMs?: Partial<Record<WorkerName, number>>;
}

export const workerNames = ["clone-worker", "logoff", "user-data", "replication"] as const;
export type WorkerName = (typeof workerNames)[number];

export interface Region {
  name: string;
  apiUrl: string;
  app: App;
  queues: { cloneJobs: { url: string; dlqUrl: string }; logoff: { url: string; dlqUrl: string } };
  dr: DrResources;
  /** The in-process workers that run (their invocation figures, for tests). */
  pollers: Poller[];
  /** Every worker's queue and handler, running or not (tests deliver jobs to them by hand). */
  workers: Record<WorkerName, PollerOptions>;
  /** The local host (with `hypervisor: "qemu"`); tests stop and restart it. */
  host: LocalHost | undefined;
  /** Starts the local host again after a stop. */
  restartHost(): Promise<LocalHost>;
  stop(): Promise<void>;
}

const awsRegion = "us-east-1";

export async function startRegion(opts: RegionOptions): Promise<Region> {
  const prefix = opts.resourcePrefix ?? `pristine-${opts.name}`;
  const sqs = sqsClient(opts.sqsEndpoint, awsRegion);
  const doc = documentClient(opts.dynamodbEndpoint, awsRegion);
  const tableName = `${prefix}-table`;
  await ensureTable(doc, tableName);
  doc.destroy();
  // Visibility timeouts as in the stack: 6x the worker's timeout.
  const visibility = (seconds: number) => opts.queueVisibilitySeconds ?? seconds;
  const cloneJobs = await ensureQueueWithDlq(sqs, `${prefix}-clone-jobs`, {
    visibilityTimeoutSeconds: visibility(900),
  });
  const logoff = await ensureQueueWithDlq(sqs, `${prefix}-logoff`, {
    visibilityTimeoutSeconds: visibility(180),
  });
  const dr = await ensureDrResources({
    sqs,
    sqsEndpoint: opts.sqsEndpoint,
    prefix,
    dataDir: opts.dataDir,
    ...(opts.userDataSizeBytes ? { userDataSizeBytes: opts.userDataSizeBytes } : {}),
    ...(opts.transfer ? { transfer: opts.transfer } : {}),
    ...(opts.peer ? { peer: opts.peer } : {}),
    ...(opts.queueVisibilitySeconds ? { visibilitySeconds: opts.queueVisibilitySeconds } : {}),
  });

  const storage = storageLayout(opts.dataDir, opts.importRoots ? { importRoots: opts.importRoots } : {});
  const defaultDatastore = defaultDatastoreOf(storage, opts.defaultDatastoreCapacity);
  // With VMs, the region's datastore belongs to a host, whose queue takes its desktops' jobs.
  const vms = opts.hypervisor === "qemu";
  const hostQueue = vms
    ? await ensureQueueWithDlq(sqs, `${prefix}-host-local`, { visibilityTimeoutSeconds: visibility(300) })
    : undefined;
  const guestDir = opts.guestDir ?? join(opts.dataDir, "guest");
  const config: PristineConfig = {
    regionName: opts.name,
    tableName,
    // As a function's environment would set them (tests shorten the key cache this way).
    timing: timingFromEnv(),
    quotas: { ...quotaDefaultsFromEnv(), ...opts.quotas },
    cloneJobsQueueUrl: cloneJobs.url,
    logoffQueueUrl: logoff.url,
    operatorKeySha256: hashApiKey(opts.operatorKey),
    storage,
    defaultDatastore: vms ? { ...defaultDatastore, hostId: "local" } : defaultDatastore,
    datastoreQueueUrls: hostQueue ? { [defaultDatastore.datastoreId]: hostQueue.url } : {},
    ...(vms
      ? {
          host: {
            hostId: "local",
            hypervisor: "qemu" as const,
            address: "127.0.0.1",
            runDir: vmRunDir(opts.dataDir),
            vmMemoryMiB: 128,
            bootFiles: { kernel: join(guestDir, "vmlinuz"), initrd: join(guestDir, "initrd.img") },
            websocket: true,
            ...(opts.qemuBinary ? { qemuBinary: opts.qemuBinary } : {}),
          },
        }
      : {}),
    worker: { ...defaultWorkerSettings, ...opts.worker },
    endpoints: { dynamodb: opts.dynamodbEndpoint, sqs: opts.sqsEndpoint, s3: opts.sqsEndpoint },
    awsRegion,
    dr: dr.config,
  };
  // The figures are read from the table (GET /v1/metrics); no EMF lines on the console here.
  process.env.POWERTOOLS_METRICS_DISABLED ??= "true";
  const app = createApp(config);

  const workers: Record<WorkerName, PollerOptions> = {
    "clone-worker": {
      sqs,
      queueUrl: cloneJobs.url,
      queueArn: cloneJobs.arn,
      functionName: `${opts.name}-clone-worker`,
      handler: cloneWorkerHandler(app),
      batchSize: 5,
      concurrency: opts.cloneWorkerConcurrency ?? 4,
      retryDelaySeconds: 2,
    },
    logoff: {
      sqs,
      queueUrl: logoff.url,
      queueArn: logoff.arn,
      functionName: `${opts.name}-logoff`,
      handler: logoffWorkerHandler(app),
      batchSize: 10,
      concurrency: 2,
      retryDelaySeconds: 2,
    },
    ...drWorkers(app, sqs, dr, opts.name),
  };
  const pollers: Poller[] = (opts.workers ?? workerNames).map((name) => {
    const timeoutMs = opts.functionTimeoutsMs?.[name];
    return startSqsPoller({
      ...workers[name],
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      ...(opts.duplicateDeliveries ? { duplicateDeliveries: true } : {}),
    });
  });

  const startHost = (queue: QueueRef) =>
    startLocalHost(app, sqs, queue, {
      functionName: `${opts.name}-host`,
      ...(opts.hostHeartbeatMs ? { heartbeatMs: opts.hostHeartbeatMs } : {}),
    });
  let host: LocalHost | undefined = hostQueue ? await startHost(hostQueue) : undefined;

  const reconcileEveryMs = opts.reconcileEveryMs ?? 60_000;
  const reconcileOnce = reconcilerHandler(app);
  // One run at a time, as the schedule's single Lambda would; stop() waits for the one in flight.
  let reconciling: Promise<unknown> | undefined;
  const reconciler =
    reconcileEveryMs > 0
      ? setInterval(() => {
          reconciling ??= invokeLocally(`${opts.name}-reconciler`, 60_000, (context) =>
            reconcileOnce({}, context),
          )
            .catch((err: Error) => console.error(`[reconciler] ${err.message}`))
            .finally(() => {
              reconciling = undefined;
            });
        }, reconcileEveryMs)
      : undefined;

  // The readiness schedule: the same function with the rule's input, one run at a time too.
  let checking: Promise<unknown> | undefined;
  const readinessEveryMs = opts.readinessEveryMs ?? readinessSettings(config.timing).periodMs;
  const readiness =
    readinessEveryMs > 0
      ? setInterval(() => {
          checking ??= invokeLocally(`${opts.name}-reconciler`, 60_000, (context) =>
            reconcileOnce({ task: "readiness" }, context),
          )
            .catch((err: Error) => console.error(`[readiness] ${err.message}`))
            .finally(() => {
              checking = undefined;
            });
        }, readinessEveryMs)
      : undefined;

  const handler = apiHandler(app);

  const server = await startApiServer({
    port: opts.port ?? 0,
    handler,
    // Stand-in for EventBridge PutEvents: the rule routes the desktop events to the logoff queue.
    localRoute: async (req, body) => {
      if (req.url !== "/local/events" || req.method !== "POST") return undefined;
      // Only the operator posts events here (in AWS, only the host agents' role may PutEvents).
      try {
        const principal = await authenticate(app.ports, config.operatorKeySha256, req.headers.authorization);
        if (principal.kind !== "operator") throw forbidden("the local event stand-in needs the operator key");
      } catch (err) {
        return errorToResponse(err).response;
      }
      let event: unknown;
      try {
        event = JSON.parse(body.toString("utf8"));
      } catch {
        return problemResponse(problem("malformedJson", "body is not valid JSON", { field: "body" }));
      }
      const parsed = desktopEventSchema.safeParse(event);
      if (!parsed.success) return problemResponse(validationProblem("body", parsed.error).problem);
      await sendJson(sqs, logoff.url, [parsed.data]);
      return {
        statusCode: 202,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ queued: true }),
      };
    },
  });

  return {
    name: opts.name,
    apiUrl: server.url,
    app,
    queues: { cloneJobs, logoff },
    dr,
    pollers,
    workers,
    get host() {
      return host;
    },
    async restartHost() {
      if (!hostQueue) throw new Error("this region runs no VMs");
      await host?.stop();
      host = await startHost(hostQueue);
      return host;
    },
    async stop() {
      await host?.stop();
      clearInterval(reconciler);
      clearInterval(readiness);
      await reconciling;
      await checking;
      await server.close();
      await Promise.all(pollers.map((p) => p.stop()));
      await app.metrics.close();
      sqs.destroy();
      app.sqs.destroy();
    },
  };
}
