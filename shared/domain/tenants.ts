import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Ports } from "../ports/index.ts";
import { unauthorized } from "./errors.ts";
import { newId } from "./ids.ts";
import type { Tenant } from "./model.ts";
import { replicateConfig } from "./replication-config.ts";

/**
 * API keys are 256-bit random secrets, so a plain SHA-256 is a sound one-way store (no need for a
 * slow password hash); only the hash is ever written.
 */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

export function newApiKey(): string {
  return `prs_${randomBytes(32).toString("base64url")}`;
}

export type Principal = { kind: "operator" } | { kind: "tenant"; tenant: Tenant };

export async function createTenant(
  ports: Pick<Ports, "tenants" | "clock" | "peer" | "replication">,
  input: { name: string },
): Promise<{ tenant: Tenant; apiKey: string }> {
  const tenant: Tenant = {
    tenantId: newId("ten"),
    name: input.name,
    createdAt: ports.clock.now().toISOString(),
  };
  const apiKey = newApiKey();
  await ports.tenants.create(tenant, hashApiKey(apiKey));
  await replicateConfig(ports, tenant.tenantId);
  return { tenant, apiKey };
}

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Resolves `Authorization: Bearer <key>` to the operator or a tenant. */
export async function authenticate(
  ports: Pick<Ports, "tenants">,
  operatorKeySha256: string | undefined,
  authorization: string | undefined,
): Promise<Principal> {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
  if (!match?.[1]) throw unauthorized();
  const hash = hashApiKey(match[1]);
  if (operatorKeySha256 && sameHash(hash, operatorKeySha256)) return { kind: "operator" };
  const tenant = await ports.tenants.findByApiKeyHash(hash);
  if (!tenant) throw unauthorized();
  return { kind: "tenant", tenant };
}
