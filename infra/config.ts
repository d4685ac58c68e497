import type { Node } from "constructs";

// Configuration of the CDK app, read from cdk.json context (or `-c key=value` on the command
// line, where every value arrives as a string and objects as JSON text).

export const CONTEXT = {
  stage: "pristine:stage",
  primaryRegion: "pristine:primaryRegion",
  drRegion: "pristine:drRegion",
  account: "pristine:account",
  datastore: "pristine:datastore",
  operatorKeySha256: "pristine:operatorKeySha256",
  api: "pristine:api",
  alarmEmail: "pristine:alarmEmail",
  qemuImgLayerArns: "pristine:qemuImgLayerArns",
  natForReplication: "pristine:natForReplication",
} as const;

/**
 * The value cdk.json ships with: 64 zeros, a well-formed digest that no known key hashes to, so
 * operator routes stay closed until a real digest is configured (synth warns while it is set).
 */
export const OPERATOR_KEY_PLACEHOLDER = "0".repeat(64);

export interface DatastoreSettings {
  /** Id under which the region's EFS datastore is registered (`POST /v1/admin/datastores`). */
  readonly id: string;
  readonly capacityGiB: number;
  readonly overcommit: number;
  /**
   * Host-local datastores served by agents on hypervisor hosts (agent mode). Each gets its own
   * work queue (with DLQ and alarms) and an IAM managed policy for the host's agent.
   */
  readonly hostDatastores: readonly string[];
}

export interface ApiSettings {
  /** Steady-state requests per second for the whole stage (default route settings). */
  readonly rateLimit: number;
  readonly burstLimit: number;
}

export interface PristineConfig {
  readonly stage: string;
  readonly primaryRegion: string;
  readonly drRegion: string;
  /** Undefined: the stacks are account-agnostic (deployed to the credentials' account). */
  readonly account: string | undefined;
  readonly datastore: DatastoreSettings;
  readonly operatorKeySha256: string;
  readonly operatorKeyIsPlaceholder: boolean;
  readonly api: ApiSettings;
  readonly alarmEmail: string | undefined;
  /**
   * Per region, the ARN of a Lambda layer that puts a `qemu-img` binary on the clone worker's
   * PATH (/opt/bin). Layers are regional, hence one per region.
   */
  readonly qemuImgLayerArns: Readonly<Record<string, string>>;
  /**
   * One NAT gateway per region for the replication worker, the only function that must reach
   * another region (the peer's replication bucket and queue). Off by default: without it the
   * stacks synthesize and deploy, but nothing is replicated to the peer (synth warns).
   */
  readonly natForReplication: boolean;
}

const STAGE = /^[a-z][a-z0-9-]{0,11}$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;
const ACCOUNT = /^\d{12}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const DATASTORE_ID = /^[a-z0-9][a-z0-9-]{0,39}$/;

function fail(key: string, message: string): never {
  throw new Error(`Invalid context ${key}: ${message}`);
}

/** Context values given with -c arrive as strings; objects and lists as JSON text. */
function parseStructured(key: string, raw: unknown): unknown {
  if (typeof raw !== "string") return raw;
  const text = raw.trim();
  if (!text.startsWith("{") && !text.startsWith("[")) return raw;
  try {
    return JSON.parse(text);
  } catch {
    return fail(key, `not valid JSON: ${text}`);
  }
}

function optionalString(node: Node, key: string): string | undefined {
  const raw = node.tryGetContext(key);
  if (raw === undefined || raw === null || raw === "") return undefined;
  if (typeof raw !== "string") fail(key, "must be a string");
  return raw;
}

function stringWithDefault(node: Node, key: string, fallback: string): string {
  return optionalString(node, key) ?? fallback;
}

function positiveNumber(key: string, raw: unknown, fallback: number): number {
  if (raw === undefined || raw === null) return fallback;
  const value = typeof raw === "string" ? Number(raw) : raw;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    fail(key, `must be a positive number, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function readDatastore(node: Node): DatastoreSettings {
  const key = CONTEXT.datastore;
  const raw = parseStructured(key, node.tryGetContext(key)) ?? {};
  if (typeof raw !== "object" || Array.isArray(raw)) fail(key, "must be an object");
  const value = raw as Record<string, unknown>;
  const id = value.id ?? "efs-datastore";
  if (typeof id !== "string" || !DATASTORE_ID.test(id)) fail(`${key}.id`, "lowercase letters, digits, -");
  const hostDatastores = value.hostDatastores ?? [];
  if (!Array.isArray(hostDatastores)) fail(`${key}.hostDatastores`, "must be a list of datastore ids");
  for (const hostId of hostDatastores) {
    if (typeof hostId !== "string" || !DATASTORE_ID.test(hostId)) {
      fail(`${key}.hostDatastores`, `invalid datastore id ${JSON.stringify(hostId)}`);
    }
    if (hostId === id) fail(`${key}.hostDatastores`, `${hostId} is already the EFS datastore's id`);
  }
  if (new Set(hostDatastores).size !== hostDatastores.length) {
    fail(`${key}.hostDatastores`, "ids must be unique");
  }
  const overcommit = positiveNumber(`${key}.overcommit`, value.overcommit, 4);
  if (overcommit < 1) fail(`${key}.overcommit`, "must be >= 1");
  return {
    id,
    capacityGiB: positiveNumber(`${key}.capacityGiB`, value.capacityGiB, 1024),
    overcommit,
    hostDatastores: hostDatastores as string[],
  };
}

function readApi(node: Node): ApiSettings {
  const key = CONTEXT.api;
  const raw = parseStructured(key, node.tryGetContext(key)) ?? {};
  if (typeof raw !== "object" || Array.isArray(raw)) fail(key, "must be an object");
  const value = raw as Record<string, unknown>;
  return {
    rateLimit: positiveNumber(`${key}.rateLimit`, value.rateLimit, 50),
    burstLimit: Math.round(positiveNumber(`${key}.burstLimit`, value.burstLimit, 100)),
  };
}

function readLayerArns(node: Node): Record<string, string> {
  const key = CONTEXT.qemuImgLayerArns;
  const raw = parseStructured(key, node.tryGetContext(key)) ?? {};
  if (typeof raw !== "object" || Array.isArray(raw)) fail(key, "must be an object {region: layerVersionArn}");
  const result: Record<string, string> = {};
  for (const [region, arn] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof arn !== "string" || !arn.startsWith(`arn:`) || !arn.includes(`:lambda:${region}:`)) {
      fail(`${key}.${region}`, `must be a Lambda layer version ARN in ${region}`);
    }
    result[region] = arn;
  }
  return result;
}

function readBoolean(node: Node, key: string, fallback: boolean): boolean {
  const raw = node.tryGetContext(key);
  if (raw === undefined || raw === null || raw === "") return fallback;
  if (raw === true || raw === "true") return true;
  if (raw === false || raw === "false") return false;
  return fail(key, `must be true or false, got ${JSON.stringify(raw)}`);
}

export function readConfig(node: Node): PristineConfig {
  const stage = stringWithDefault(node, CONTEXT.stage, "dev");
  if (!STAGE.test(stage)) fail(CONTEXT.stage, `${stage}: 1-12 chars, lowercase letters, digits, -`);

  const primaryRegion = stringWithDefault(node, CONTEXT.primaryRegion, "eu-west-1");
  const drRegion = stringWithDefault(node, CONTEXT.drRegion, "eu-central-1");
  if (!REGION.test(primaryRegion)) fail(CONTEXT.primaryRegion, `${primaryRegion} is not a region`);
  if (!REGION.test(drRegion)) fail(CONTEXT.drRegion, `${drRegion} is not a region`);
  if (primaryRegion === drRegion) fail(CONTEXT.drRegion, "must differ from the primary region");

  const account = optionalString(node, CONTEXT.account);
  if (account !== undefined && !ACCOUNT.test(account)) fail(CONTEXT.account, "must be a 12-digit id");

  const operatorKeySha256 = stringWithDefault(node, CONTEXT.operatorKeySha256, OPERATOR_KEY_PLACEHOLDER);
  const operatorKeyIsPlaceholder = operatorKeySha256 === OPERATOR_KEY_PLACEHOLDER;
  if (!operatorKeyIsPlaceholder && !SHA256_HEX.test(operatorKeySha256)) {
    fail(CONTEXT.operatorKeySha256, "must be the lowercase sha256 hex digest of the operator key");
  }

  const qemuImgLayerArns = readLayerArns(node);

  return {
    stage,
    primaryRegion,
    drRegion,
    account,
    datastore: readDatastore(node),
    operatorKeySha256,
    operatorKeyIsPlaceholder,
    api: readApi(node),
    alarmEmail: optionalString(node, CONTEXT.alarmEmail),
    qemuImgLayerArns,
    natForReplication: readBoolean(node, CONTEXT.natForReplication, false),
  };
}
