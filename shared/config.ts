import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import type { Qcow2Layout } from "./adapters/storage/qcow2-driver.ts";
import { defaultWorkerSettings, type WorkerSettings } from "./domain/clone-jobs.ts";
import type { DefaultDatastore } from "./domain/datastores.ts";
import type { QuotaLimits } from "./domain/model.ts";
import { quotaDefaultsFromEnv, quotaEnvironment } from "./quota-config.ts";
import { type Timing, timingFromEnv } from "./timing-config.ts";

export { type Timing, timingFromEnv };

/** Everything a region's functions need; built from the environment in Lambda, by hand locally. */
export interface PristineConfig {
  regionName: string;
  tableName: string;
  /** Each function gets only what it uses; a missing one fails loudly at first use. */
  cloneJobsQueueUrl?: string;
  /** The logoff queue, for a process that consumes it itself (an agent). */
  logoffQueueUrl?: string;
  /** Datastore id -> the queue of the host that runs it: its desktops' jobs go there. */
  datastoreQueueUrls: Record<string, string>;
  /** The bus desktop agents' events are sent to (host agents; in AWS, EventBridge). */
  eventBusName?: string;
  /** Set in a host agent: the VMs it runs (PRISTINE_HYPERVISOR=qemu). */
  host?: HostSettings;
  operatorKeySha256?: string;
  storage: Qcow2Layout;
  /** The region's own datastore, usable before (and overridden by) a registration of the same id. */
  defaultDatastore: DefaultDatastore;
  worker: WorkerSettings;
  /** How long things may take before they count as late (defaults where they are used). */
  timing: Timing;
  /** Explicit endpoints for the emulators; in AWS the SDK's defaults (or AWS_ENDPOINT_URL_*) apply. */
  endpoints: { dynamodb?: string; sqs?: string; s3?: string };
  awsRegion?: string;
  /** User data and DR; each function gets what it uses. */
  dr?: DrConfig;
  /** Each tenant's quotas unless the operator set its own (absent: the built-in defaults). */
  quotas?: QuotaLimits;
}

/** A host agent's own settings. */
export interface HostSettings {
  hostId: string;
  hypervisor: "qemu" | "none";
  /** Where users reach the host's VNC ports. */
  address: string;
  runDir: string;
  vmMemoryMiB: number;
  /** Direct kernel boot of the desktop guest (npm run image:build makes them). */
  bootFiles?: { kernel: string; initrd: string };
  /** The QEMU to run (default qemu-system-x86_64 on the PATH). */
  qemuBinary?: string;
  websocket: boolean;
}

export interface DrConfig {
  /** The user-data FIFO queue (group = tenant#user). */
  userDataQueueUrl?: string;
  replicationQueueUrl?: string;
  /** This region's replication bucket (the peer ships into it). */
  replicationBucket?: string;
  userDataPath: string;
  userDataSizeBytes: number;
  /** How files travel through the replication buckets (defaults in the S3 adapter). */
  transfer?: TransferSettings;
  /** The peer region's names, as each stack knows its peer's. */
  peer?: {
    name: string;
    bucket: string;
    replicationQueueUrl: string;
    /** The peer's table: a failover fences the tenant in it directly (never through a queue). */
    tableName?: string;
    /** The peer's AWS region (its bucket, queue and table are reached there). */
    awsRegion?: string;
    dynamodbEndpoint?: string;
    sqsEndpoint?: string;
    s3Endpoint?: string;
  };
}

/**
 * Files of any size go through the replication buckets: uploads in parts, downloads streamed into
 * the folder where they are needed. Only a download with no such folder is staged in temporary
 * storage, and never more of it than `stagingLimitBytes` (Lambda's /tmp is 512 MB by default).
 */
export interface TransferSettings {
  /** Where a download with no destination is staged (default: the OS temp dir). */
  stagingDir?: string;
  /** The most a download may stage there (PRISTINE_TMP_LIMIT_MIB; default 512 MiB). */
  stagingLimitBytes?: number;
  /** Multipart upload part size (PRISTINE_UPLOAD_PART_SIZE_MIB; S3's minimum is 5 MiB). */
  partSizeBytes?: number;
}

/** The user-data store of a data dir, beside its datastores. */
export const userDataPath = (dataDir: string) => join(resolve(dataDir), "userdata");

const envSchema = z.object({
  PRISTINE_REGION_NAME: z.string().default("local"),
  PRISTINE_TABLE_NAME: z.string().min(1),
  PRISTINE_CLONE_JOBS_QUEUE_URL: z.url().optional(),
  PRISTINE_OPERATOR_KEY_SHA256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, "must be a sha256 hex digest")
    .optional(),
  PRISTINE_DATA_DIR: z.string().default("./.pristine"),
  PRISTINE_IMAGE_STORE_PATH: z.string().optional(),
  PRISTINE_DATASTORE_PATH: z.string().optional(),
  PRISTINE_DATASTORE_ID: z.string().default("ds-default"),
  PRISTINE_DATASTORE_CAPACITY_GIB: z.coerce.number().positive().default(1024),
  PRISTINE_DATASTORE_OVERCOMMIT: z.coerce.number().positive().default(4),
  PRISTINE_PROVISIONING_CAP_PER_DATASTORE: z.coerce.number().int().positive().default(20),
  PRISTINE_MAINTENANCE_CAP_PER_DATASTORE: z.coerce.number().int().positive().default(12),
  PRISTINE_PROVISIONING_CAP_PER_HOST: z.coerce.number().int().positive().default(20),
  PRISTINE_MAINTENANCE_CAP_PER_HOST: z.coerce.number().int().positive().default(12),
  PRISTINE_IMPORT_ROOTS: z.string().optional(),
  AWS_ENDPOINT_URL_DYNAMODB: z.string().optional(),
  AWS_ENDPOINT_URL_SQS: z.string().optional(),
  AWS_REGION: z.string().optional(),
  AWS_ENDPOINT_URL_S3: z.string().optional(),
  PRISTINE_USER_DATA_QUEUE_URL: z.url().optional(),
  PRISTINE_REPLICATION_QUEUE_URL: z.url().optional(),
  PRISTINE_REPLICATION_BUCKET: z.string().optional(),
  PRISTINE_USER_DATA_PATH: z.string().optional(),
  PRISTINE_USER_DATA_SIZE_MIB: z.coerce.number().int().positive().default(1024),
  PRISTINE_TMP_DIR: z.string().optional(),
  PRISTINE_TMP_LIMIT_MIB: z.coerce.number().int().positive().optional(),
  PRISTINE_UPLOAD_PART_SIZE_MIB: z.coerce
    .number()
    .int()
    .min(5)
    .max(5 * 1024)
    .optional(),
  PRISTINE_PEER_REGION_NAME: z.string().optional(),
  PRISTINE_PEER_BUCKET: z.string().optional(),
  PRISTINE_PEER_REPLICATION_QUEUE_URL: z.url().optional(),
  PRISTINE_PEER_TABLE_NAME: z.string().optional(),
  PRISTINE_PEER_AWS_REGION: z.string().optional(),
  PRISTINE_PEER_DYNAMODB_ENDPOINT: z.string().optional(),
  PRISTINE_PEER_SQS_ENDPOINT: z.string().optional(),
  PRISTINE_PEER_S3_ENDPOINT: z.string().optional(),
  /** Only agents poll it (in AWS the logoff function's event source does). */
  PRISTINE_LOGOFF_QUEUE_URL: z.url().optional(),
  PRISTINE_DATASTORE_QUEUE_URLS: z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (!text) return {};
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      const parsed = z.record(z.string(), z.url()).safeParse(json);
      if (!parsed.success)
        ctx.addIssue({ code: "custom", message: "must be JSON: datastore id -> queue URL" });
      return parsed.success ? parsed.data : {};
    }),
  PRISTINE_EVENT_BUS_NAME: z.string().optional(),
  PRISTINE_HYPERVISOR: z.enum(["qemu", "none"]).default("none"),
  PRISTINE_HOST_ID: z.string().optional(),
  PRISTINE_HOST_ADDRESS: z.string().default("127.0.0.1"),
  PRISTINE_VM_RUN_DIR: z.string().optional(),
  PRISTINE_VM_MEMORY_MIB: z.coerce.number().int().min(64).max(65536).default(128),
  PRISTINE_GUEST_KERNEL: z.string().optional(),
  PRISTINE_GUEST_INITRD: z.string().optional(),
  PRISTINE_VM_WEBSOCKET: z.enum(["on", "off"]).default("on"),
});

export function storageLayout(
  dataDir: string,
  overrides: Partial<{
    imageStorePath: string;
    datastorePath: string;
    datastoreId: string;
    importRoots: string[];
  }> = {},
): Qcow2Layout {
  const root = resolve(dataDir);
  return {
    imageStorePath: overrides.imageStorePath ?? join(root, "images"),
    datastores: {
      [overrides.datastoreId ?? "ds-default"]:
        overrides.datastorePath ?? join(root, "datastores", "ds-default"),
    },
    // Never a shared folder such as the temp dir: each tenant's folder under it is the tenant's alone.
    importRoots: overrides.importRoots ?? [join(root, "imports")],
  };
}

/** The default datastore of a layout built by `storageLayout` (its one entry). */
export function defaultDatastoreOf(
  layout: Qcow2Layout,
  capacity: { capacityGiB: number; overcommit: number } = { capacityGiB: 1024, overcommit: 4 },
): DefaultDatastore {
  const [datastoreId, path] = Object.entries(layout.datastores)[0] as [string, string];
  return { datastoreId, path, ...capacity };
}

/**
 * The default run dir of a data dir's VMs: QEMU's unix sockets live there, and their paths may
 * not pass 107 bytes, which a data dir deep in a home folder would.
 */
export const vmRunDir = (dataDir: string) =>
  join(tmpdir(), `pristine-vms-${createHash("sha256").update(resolve(dataDir)).digest("hex").slice(0, 10)}`);

export function loadConfig(env: NodeJS.ProcessEnv = process.env): PristineConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid configuration: ${problems}`);
  }
  const e = parsed.data;
  const storage = storageLayout(e.PRISTINE_DATA_DIR, {
    ...(e.PRISTINE_IMAGE_STORE_PATH ? { imageStorePath: e.PRISTINE_IMAGE_STORE_PATH } : {}),
    ...(e.PRISTINE_DATASTORE_PATH ? { datastorePath: e.PRISTINE_DATASTORE_PATH } : {}),
    datastoreId: e.PRISTINE_DATASTORE_ID,
    ...(e.PRISTINE_IMPORT_ROOTS ? { importRoots: e.PRISTINE_IMPORT_ROOTS.split(":").filter(Boolean) } : {}),
  });
  return {
    regionName: e.PRISTINE_REGION_NAME,
    tableName: e.PRISTINE_TABLE_NAME,
    ...(e.PRISTINE_CLONE_JOBS_QUEUE_URL ? { cloneJobsQueueUrl: e.PRISTINE_CLONE_JOBS_QUEUE_URL } : {}),
    ...(e.PRISTINE_LOGOFF_QUEUE_URL ? { logoffQueueUrl: e.PRISTINE_LOGOFF_QUEUE_URL } : {}),
    datastoreQueueUrls: e.PRISTINE_DATASTORE_QUEUE_URLS,
    ...(e.PRISTINE_EVENT_BUS_NAME ? { eventBusName: e.PRISTINE_EVENT_BUS_NAME } : {}),
    ...(e.PRISTINE_HOST_ID
      ? {
          host: {
            hostId: e.PRISTINE_HOST_ID,
            hypervisor: e.PRISTINE_HYPERVISOR,
            address: e.PRISTINE_HOST_ADDRESS,
            runDir: e.PRISTINE_VM_RUN_DIR ?? vmRunDir(e.PRISTINE_DATA_DIR),
            vmMemoryMiB: e.PRISTINE_VM_MEMORY_MIB,
            ...(e.PRISTINE_GUEST_KERNEL && e.PRISTINE_GUEST_INITRD
              ? { bootFiles: { kernel: e.PRISTINE_GUEST_KERNEL, initrd: e.PRISTINE_GUEST_INITRD } }
              : {}),
            websocket: e.PRISTINE_VM_WEBSOCKET === "on",
          },
        }
      : {}),
    ...(e.PRISTINE_OPERATOR_KEY_SHA256 ? { operatorKeySha256: e.PRISTINE_OPERATOR_KEY_SHA256 } : {}),
    storage,
    defaultDatastore: defaultDatastoreOf(storage, {
      capacityGiB: e.PRISTINE_DATASTORE_CAPACITY_GIB,
      overcommit: e.PRISTINE_DATASTORE_OVERCOMMIT,
    }),
    timing: timingFromEnv(env),
    quotas: quotaDefaultsFromEnv(env),
    worker: {
      ...defaultWorkerSettings,
      datastoreCaps: {
        provisioning: e.PRISTINE_PROVISIONING_CAP_PER_DATASTORE,
        maintenance: e.PRISTINE_MAINTENANCE_CAP_PER_DATASTORE,
      },
      hostCaps: {
        provisioning: e.PRISTINE_PROVISIONING_CAP_PER_HOST,
        maintenance: e.PRISTINE_MAINTENANCE_CAP_PER_HOST,
      },
    },
    endpoints: {
      dynamodb: e.AWS_ENDPOINT_URL_DYNAMODB,
      sqs: e.AWS_ENDPOINT_URL_SQS,
      s3: e.AWS_ENDPOINT_URL_S3,
    },
    ...(e.AWS_REGION ? { awsRegion: e.AWS_REGION } : {}),
    dr: {
      ...(e.PRISTINE_USER_DATA_QUEUE_URL ? { userDataQueueUrl: e.PRISTINE_USER_DATA_QUEUE_URL } : {}),
      ...(e.PRISTINE_REPLICATION_QUEUE_URL ? { replicationQueueUrl: e.PRISTINE_REPLICATION_QUEUE_URL } : {}),
      ...(e.PRISTINE_REPLICATION_BUCKET ? { replicationBucket: e.PRISTINE_REPLICATION_BUCKET } : {}),
      userDataPath: e.PRISTINE_USER_DATA_PATH ?? userDataPath(e.PRISTINE_DATA_DIR),
      userDataSizeBytes: e.PRISTINE_USER_DATA_SIZE_MIB * 1024 * 1024,
      transfer: {
        ...(e.PRISTINE_TMP_DIR ? { stagingDir: e.PRISTINE_TMP_DIR } : {}),
        ...(e.PRISTINE_TMP_LIMIT_MIB ? { stagingLimitBytes: e.PRISTINE_TMP_LIMIT_MIB * 1024 * 1024 } : {}),
        ...(e.PRISTINE_UPLOAD_PART_SIZE_MIB
          ? { partSizeBytes: e.PRISTINE_UPLOAD_PART_SIZE_MIB * 1024 * 1024 }
          : {}),
      },
      ...(e.PRISTINE_PEER_REGION_NAME && e.PRISTINE_PEER_BUCKET && e.PRISTINE_PEER_REPLICATION_QUEUE_URL
        ? {
            peer: {
              name: e.PRISTINE_PEER_REGION_NAME,
              bucket: e.PRISTINE_PEER_BUCKET,
              replicationQueueUrl: e.PRISTINE_PEER_REPLICATION_QUEUE_URL,
              ...(e.PRISTINE_PEER_TABLE_NAME ? { tableName: e.PRISTINE_PEER_TABLE_NAME } : {}),
              ...(e.PRISTINE_PEER_AWS_REGION ? { awsRegion: e.PRISTINE_PEER_AWS_REGION } : {}),
              ...(e.PRISTINE_PEER_DYNAMODB_ENDPOINT
                ? { dynamodbEndpoint: e.PRISTINE_PEER_DYNAMODB_ENDPOINT }
                : {}),
              ...(e.PRISTINE_PEER_SQS_ENDPOINT ? { sqsEndpoint: e.PRISTINE_PEER_SQS_ENDPOINT } : {}),
              ...(e.PRISTINE_PEER_S3_ENDPOINT ? { s3Endpoint: e.PRISTINE_PEER_S3_ENDPOINT } : {}),
            },
          }
        : {}),
    },
  };
}

/**
 * The environment that `loadConfig` reads back as this configuration: how a worker started as its
 * own process (an agent, or a test's crashing worker) gets the same region as the one that made it.
 */
const mib = (bytes: number | undefined) =>
  bytes === undefined ? undefined : Math.ceil(bytes / (1024 * 1024));

export function configEnvironment(config: PristineConfig): Record<string, string> {
  const ds = config.defaultDatastore;
  const dr = config.dr;
  const peer = dr?.peer;
  const entries: [string, string | number | undefined][] = [
    ["PRISTINE_REGION_NAME", config.regionName],
    ["PRISTINE_KEY_CACHE_MS", config.timing.keyCacheMs],
    ["PRISTINE_RECONCILE_STALE_AFTER_MS", config.timing.reconcileStaleAfterMs],
    ["PRISTINE_HOST_DEADLINE_MS", config.timing.hostDeadlineMs],
    ["PRISTINE_READINESS_PERIOD_MS", config.timing.readinessPeriodMs],
    ["PRISTINE_READINESS_SAMPLE_USERS", config.timing.readinessSampleUsers],
    ["PRISTINE_TABLE_NAME", config.tableName],
    ["PRISTINE_CLONE_JOBS_QUEUE_URL", config.cloneJobsQueueUrl],
    ["PRISTINE_LOGOFF_QUEUE_URL", config.logoffQueueUrl],
    [
      "PRISTINE_DATASTORE_QUEUE_URLS",
      Object.keys(config.datastoreQueueUrls).length ? JSON.stringify(config.datastoreQueueUrls) : undefined,
    ],
    ["PRISTINE_EVENT_BUS_NAME", config.eventBusName],
    ["PRISTINE_HOST_ID", config.host?.hostId],
    ["PRISTINE_HYPERVISOR", config.host?.hypervisor],
    ["PRISTINE_HOST_ADDRESS", config.host?.address],
    ["PRISTINE_VM_RUN_DIR", config.host?.runDir],
    ["PRISTINE_VM_MEMORY_MIB", config.host?.vmMemoryMiB],
    ["PRISTINE_GUEST_KERNEL", config.host?.bootFiles?.kernel],
    ["PRISTINE_GUEST_INITRD", config.host?.bootFiles?.initrd],
    ["PRISTINE_VM_WEBSOCKET", config.host ? (config.host.websocket ? "on" : "off") : undefined],
    ["PRISTINE_OPERATOR_KEY_SHA256", config.operatorKeySha256],
    ["PRISTINE_IMAGE_STORE_PATH", config.storage.imageStorePath],
    ["PRISTINE_DATASTORE_ID", ds.datastoreId],
    ["PRISTINE_DATASTORE_PATH", ds.path],
    ["PRISTINE_DATASTORE_CAPACITY_GIB", ds.capacityGiB],
    ["PRISTINE_DATASTORE_OVERCOMMIT", ds.overcommit],
    ["PRISTINE_PROVISIONING_CAP_PER_DATASTORE", config.worker.datastoreCaps.provisioning],
    ["PRISTINE_MAINTENANCE_CAP_PER_DATASTORE", config.worker.datastoreCaps.maintenance],
    ["PRISTINE_PROVISIONING_CAP_PER_HOST", config.worker.hostCaps.provisioning],
    ["PRISTINE_MAINTENANCE_CAP_PER_HOST", config.worker.hostCaps.maintenance],
    ["PRISTINE_IMPORT_ROOTS", config.storage.importRoots.join(":")],
    ["AWS_ENDPOINT_URL_DYNAMODB", config.endpoints.dynamodb],
    ["AWS_ENDPOINT_URL_SQS", config.endpoints.sqs],
    ["AWS_ENDPOINT_URL_S3", config.endpoints.s3],
    ["AWS_REGION", config.awsRegion],
    ["PRISTINE_USER_DATA_QUEUE_URL", dr?.userDataQueueUrl],
    ["PRISTINE_REPLICATION_QUEUE_URL", dr?.replicationQueueUrl],
    ["PRISTINE_REPLICATION_BUCKET", dr?.replicationBucket],
    ["PRISTINE_USER_DATA_PATH", dr?.userDataPath],
    ["PRISTINE_USER_DATA_SIZE_MIB", dr ? Math.round(dr.userDataSizeBytes / (1024 * 1024)) : undefined],
    ["PRISTINE_TMP_DIR", dr?.transfer?.stagingDir],
    ["PRISTINE_TMP_LIMIT_MIB", mib(dr?.transfer?.stagingLimitBytes)],
    ["PRISTINE_UPLOAD_PART_SIZE_MIB", mib(dr?.transfer?.partSizeBytes)],
    ["PRISTINE_PEER_REGION_NAME", peer?.name],
    ["PRISTINE_PEER_BUCKET", peer?.bucket],
    ["PRISTINE_PEER_REPLICATION_QUEUE_URL", peer?.replicationQueueUrl],
    ["PRISTINE_PEER_TABLE_NAME", peer?.tableName],
    ["PRISTINE_PEER_AWS_REGION", peer?.awsRegion],
    ["PRISTINE_PEER_DYNAMODB_ENDPOINT", peer?.dynamodbEndpoint],
    ["PRISTINE_PEER_SQS_ENDPOINT", peer?.sqsEndpoint],
    ["PRISTINE_PEER_S3_ENDPOINT", peer?.s3Endpoint],
  ];
  return {
    ...Object.fromEntries(entries.filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)])),
    ...quotaEnvironment(config.quotas),
  };
}
