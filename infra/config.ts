import type { Node } from "constructs";
import type { RegionRole } from "./names.ts";

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
  hostFleet: "pristine:hostFleet",
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

/**
 * Where a fleet host keeps its datastore: a gp3 EBS volume of its own (the default: every metal
 * type has EBS, and the volume survives stop/start), or the metal type's NVMe instance store
 * (faster, but blank after every stop/start; only types with instance store, e.g. m5d.metal).
 */
export type HostStorage =
  | {
      readonly kind: "gp3";
      readonly sizeGiB: number;
      /**
       * Provisioned IOPS (3000-16000). Throughput stays at gp3's baseline (125 MiB/s): CloudFormation
       * cannot set it on an instance's block device; raise it with `aws ec2 modify-volume`.
       */
      readonly iops: number;
    }
  | { readonly kind: "instance-store" };

/** pristine:hostFleet: EC2 bare-metal hosts that run the host agent, one per host datastore. */
export interface HostFleetSettings {
  /** A bare-metal x86_64 instance type (KVM needs the hardware; the guests are x86_64). */
  readonly instanceType: string;
  /** Host ids, one instance each; each is a host-local datastore id (pristine:datastore.hostDatastores). */
  readonly hosts: readonly string[];
  /** EC2 key pair for SSH; unset: no key, hosts are reached with SSM Session Manager only. */
  readonly keyName: string | undefined;
  /** The stacks that get the fleet (default only the primary region's). */
  readonly regions: readonly RegionRole[];
  readonly storage: HostStorage;
  /**
   * Per region, a pinned AMI (Ubuntu 24.04 amd64). Unset for a region: the latest Ubuntu 24.04 AMI
   * from Canonical's public SSM parameter, resolved at each deploy (a new AMI replaces the hosts).
   */
  readonly amiIds: Readonly<Record<string, string>>;
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
  /** Off (undefined) by default: no EC2 instance in the stacks. */
  readonly hostFleet: HostFleetSettings | undefined;
}

const STAGE = /^[a-z][a-z0-9-]{0,11}$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;
const ACCOUNT = /^\d{12}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const DATASTORE_ID = /^[a-z0-9][a-z0-9-]{0,39}$/;
/** `<family>.metal` or `<family>.metal-<size>` (m5zn.metal, c5.metal, m7i.metal-24xl, i4i.metal). */
const METAL_INSTANCE_TYPE = /^([a-z][a-z0-9-]*)\.metal(-[0-9]+xl)?$/;
/** Graviton families (a1, m6g, c7gn, r8gd, ...): arm64, where x86_64 guests get no KVM. */
const ARM_FAMILY = /^(a1|[a-z]+[0-9]+g[a-z]*)$/;
const AMI_ID = /^ami-[0-9a-f]{8,17}$/;
const KEY_NAME = /^[\x20-\x7e]{1,255}$/;

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

function integerIn(key: string, raw: unknown, fallback: number, min: number, max: number): number {
  if (raw === undefined || raw === null) return fallback;
  if (typeof raw !== "number" || !Number.isInteger(raw) || raw < min || raw > max) {
    fail(key, `must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return raw;
}

function rejectUnknownKeys(key: string, value: Record<string, unknown>, known: readonly string[]): void {
  for (const name of Object.keys(value)) {
    if (!known.includes(name)) fail(`${key}.${name}`, `unknown setting (known: ${known.join(", ")})`);
  }
}

function readHostStorage(key: string, raw: unknown): HostStorage {
  const value = raw ?? {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(key, "must be an object");
  const storage = value as Record<string, unknown>;
  const kind = storage.kind ?? "gp3";
  if (kind === "instance-store") {
    rejectUnknownKeys(key, storage, ["kind"]);
    return { kind };
  }
  if (kind !== "gp3") fail(`${key}.kind`, `must be "gp3" or "instance-store", got ${JSON.stringify(kind)}`);
  rejectUnknownKeys(key, storage, ["kind", "sizeGiB", "iops"]);
  const sizeGiB = integerIn(`${key}.sizeGiB`, storage.sizeGiB, 1000, 100, 16384);
  const iops = integerIn(`${key}.iops`, storage.iops, 3000, 3000, 16000);
  return { kind: "gp3", sizeGiB, iops };
}

/**
 * pristine:hostFleet: off when unset (or false). Given as an object, or JSON text with -c, e.g.
 * `{"instanceType":"m5zn.metal","hosts":["host-a-ssd"]}`.
 */
function readHostFleet(
  node: Node,
  datastore: DatastoreSettings,
  regions: { primary: string; dr: string },
): HostFleetSettings | undefined {
  const key = CONTEXT.hostFleet;
  const raw = parseStructured(key, node.tryGetContext(key));
  if (raw === undefined || raw === null || raw === "" || raw === false || raw === "false") return undefined;
  if (typeof raw !== "object" || Array.isArray(raw)) {
    fail(key, 'must be an object such as {"instanceType":"m5zn.metal","hosts":["host-a-ssd"]}');
  }
  const value = raw as Record<string, unknown>;
  rejectUnknownKeys(key, value, ["instanceType", "hosts", "keyName", "regions", "storage", "amiIds"]);

  const instanceType = value.instanceType;
  const metal = typeof instanceType === "string" ? METAL_INSTANCE_TYPE.exec(instanceType) : null;
  const family = metal?.[1] ?? "";
  if (typeof instanceType !== "string" || !metal || ARM_FAMILY.test(family) || family.startsWith("mac")) {
    fail(
      `${key}.instanceType`,
      "must be a bare-metal x86_64 instance type such as m5zn.metal, c5.metal or m7i.metal-24xl " +
        `(KVM needs bare metal; Graviton and mac types cannot host the x86_64 guests), got ${JSON.stringify(instanceType)}`,
    );
  }

  const hosts = value.hosts;
  if (!Array.isArray(hosts) || hosts.length === 0) {
    fail(`${key}.hosts`, "must be a non-empty list of host ids (ids of pristine:datastore.hostDatastores)");
  }
  const known = datastore.hostDatastores;
  for (const host of hosts) {
    if (typeof host !== "string" || !known.includes(host)) {
      fail(
        `${key}.hosts`,
        `unknown host id ${JSON.stringify(host)}: each must be one of pristine:datastore.hostDatastores ` +
          `(${known.length > 0 ? known.join(", ") : "none configured"})`,
      );
    }
  }
  if (new Set(hosts).size !== hosts.length) fail(`${key}.hosts`, "host ids must be unique");

  const keyName = value.keyName;
  if (keyName !== undefined && (typeof keyName !== "string" || !KEY_NAME.test(keyName))) {
    fail(`${key}.keyName`, "must be the name of an EC2 key pair");
  }

  const roles = value.regions ?? ["primary"];
  if (!Array.isArray(roles) || roles.length === 0 || roles.some((r) => r !== "primary" && r !== "dr")) {
    fail(`${key}.regions`, `must be a non-empty list of "primary" and/or "dr", got ${JSON.stringify(roles)}`);
  }
  if (new Set(roles).size !== roles.length) fail(`${key}.regions`, "must not repeat a region");

  const amiIds = value.amiIds ?? {};
  if (typeof amiIds !== "object" || amiIds === null || Array.isArray(amiIds)) {
    fail(`${key}.amiIds`, 'must be an object {"<region>": "ami-..."}');
  }
  for (const [region, ami] of Object.entries(amiIds as Record<string, unknown>)) {
    if (region !== regions.primary && region !== regions.dr) {
      fail(`${key}.amiIds.${region}`, `not a region of this app (${regions.primary}, ${regions.dr})`);
    }
    if (typeof ami !== "string" || !AMI_ID.test(ami))
      fail(`${key}.amiIds.${region}`, "must be an AMI id (ami-...)");
  }

  return {
    instanceType,
    hosts: hosts as string[],
    keyName: keyName as string | undefined,
    regions: roles as RegionRole[],
    storage: readHostStorage(`${key}.storage`, value.storage),
    amiIds: amiIds as Record<string, string>,
  };
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
  const datastore = readDatastore(node);
  const natForReplication = readBoolean(node, CONTEXT.natForReplication, false);
  const hostFleet = readHostFleet(node, datastore, { primary: primaryRegion, dr: drRegion });
  if (hostFleet && !natForReplication) {
    fail(
      CONTEXT.hostFleet,
      `needs ${CONTEXT.natForReplication}=true: the hosts run in the private subnets behind its NAT ` +
        "gateway (they install packages, and reach SSM and EventBridge through it)",
    );
  }

  return {
    stage,
    primaryRegion,
    drRegion,
    account,
    datastore,
    operatorKeySha256,
    operatorKeyIsPlaceholder,
    api: readApi(node),
    alarmEmail: optionalString(node, CONTEXT.alarmEmail),
    qemuImgLayerArns,
    natForReplication,
    hostFleet,
  };
}
