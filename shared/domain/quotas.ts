/**
 * Per-tenant quotas: no tenant can take the region's shared datastores (or its image store) from
 * the others. The region's defaults come from configuration; the operator overrides them per
 * tenant. Enforcement is in the writes themselves (a conditional charge on the tenant's usage item,
 * in the same transaction as the desktops' datastore reservations); the checks here come first so
 * that a refusal names the quota, and run again after a write lost a race.
 */
import type { Ports, TenantCharge } from "../ports/index.ts";
import { DomainError, notFound, type QuotaBreach } from "./errors.ts";
import {
  type QuotaLimits,
  type QuotaName,
  quotaNames,
  type TenantQuotas,
  type TenantUsage,
} from "./model.ts";
import { GiB } from "./placement.ts";

/**
 * The defaults when configuration says nothing: room for a few pools of a typical size, a quarter
 * of the local default datastore's effective capacity (1 TiB x 4), and no image as large as the
 * 961 GiB blank disk a hostile tenant tried.
 */
export const defaultQuotas: QuotaLimits = {
  maxDesktops: 500,
  maxProvisionedBytes: 1024 * GiB,
  maxImages: 50,
  maxImageBytes: 256 * GiB,
};

const usageOf: Record<QuotaName, keyof TenantUsage | undefined> = {
  maxDesktops: "desktops",
  maxProvisionedBytes: "provisionedBytes",
  maxImages: "images",
  maxImageBytes: undefined,
};

const shown = (name: QuotaName, n: number) =>
  name === "maxProvisionedBytes" || name === "maxImageBytes" ? `${(n / GiB).toFixed(2)} GiB` : String(n);

export function quotaExceeded(breach: QuotaBreach): DomainError {
  const { name, limit, used, requested } = breach;
  const inUse = usageOf[name] ? `; in use: ${shown(name, used)}` : "";
  return new DomainError(
    "quotaExceeded",
    `quota ${name} exceeded: limit ${shown(name, limit)}${inUse}; this request needs ${shown(name, requested)}`,
    { quota: breach },
  );
}

async function limitsOf(ports: Pick<Ports, "quotas">, defaults: QuotaLimits, tenantId: string) {
  const overrides = await ports.quotas.getOverrides(tenantId);
  const limits = { ...defaults };
  const overridden: QuotaName[] = [];
  for (const name of quotaNames) {
    const value = overrides[name];
    if (typeof value === "number") {
      limits[name] = value;
      overridden.push(name);
    }
  }
  return { limits, overridden };
}

/** Usage counters may lag below zero for desktops made before quotas existed: never shown so. */
const clamp = (u: TenantUsage): TenantUsage => ({
  desktops: Math.max(0, u.desktops),
  provisionedBytes: Math.max(0, u.provisionedBytes),
  images: Math.max(0, u.images),
});

export async function tenantQuotas(
  ports: Pick<Ports, "quotas">,
  defaults: QuotaLimits,
  tenantId: string,
): Promise<TenantQuotas> {
  const [{ limits, overridden }, usage] = await Promise.all([
    limitsOf(ports, defaults, tenantId),
    ports.quotas.usage(tenantId),
  ]);
  return { tenantId, limits, overridden, usage: clamp(usage) };
}

/** The operator's `PUT`: the quotas given replace the tenant's overrides; the others follow the defaults. */
export async function setTenantQuotas(
  ports: Pick<Ports, "quotas" | "tenants">,
  defaults: QuotaLimits,
  tenantId: string,
  overrides: Partial<QuotaLimits>,
): Promise<TenantQuotas> {
  await requireTenant(ports, tenantId);
  await ports.quotas.putOverrides(tenantId, overrides);
  return tenantQuotas(ports, defaults, tenantId);
}

export async function operatorTenantQuotas(
  ports: Pick<Ports, "quotas" | "tenants">,
  defaults: QuotaLimits,
  tenantId: string,
) {
  await requireTenant(ports, tenantId);
  return tenantQuotas(ports, defaults, tenantId);
}

async function requireTenant(ports: Pick<Ports, "tenants">, tenantId: string) {
  if (!(await ports.tenants.get(tenantId))) throw notFound("tenant", tenantId);
}

/**
 * The charge of desktops the tenant did not ask for (a failover, a drill, the operator's
 * rebalance): counted, so that their removal gives back what they took, never refused.
 */
export const countedCharge = (tenantId: string, count: number, bytesEach: number): TenantCharge => ({
  tenantId,
  desktops: count,
  provisionedBytes: count * bytesEach,
});

/**
 * The charge of `count` new desktops of `bytesEach` that the tenant asked for, checked against its
 * quotas now (a refusal names the first quota they pass) and carrying the limits for the write's
 * own condition.
 */
export async function limitedCharge(
  ports: Pick<Ports, "quotas">,
  defaults: QuotaLimits,
  tenantId: string,
  count: number,
  bytesEach: number,
): Promise<TenantCharge> {
  const charge = countedCharge(tenantId, count, bytesEach);
  const { limits, usage } = await tenantQuotas(ports, defaults, tenantId);
  const asks: [QuotaName, number, number][] = [
    ["maxDesktops", usage.desktops, charge.desktops],
    ["maxProvisionedBytes", usage.provisionedBytes, charge.provisionedBytes],
  ];
  for (const [name, used, requested] of asks)
    if (used + requested > limits[name]) throw quotaExceeded({ name, limit: limits[name], used, requested });
  return { ...charge, limits };
}

/** An image may be created while the tenant has fewer than `maxImages`; answers that limit. */
export async function imageAllowance(
  ports: Pick<Ports, "quotas">,
  defaults: QuotaLimits,
  tenantId: string,
): Promise<number> {
  const { limits, usage } = await tenantQuotas(ports, defaults, tenantId);
  if (usage.images + 1 > limits.maxImages)
    throw quotaExceeded({ name: "maxImages", limit: limits.maxImages, used: usage.images, requested: 1 });
  return limits.maxImages;
}

/** A version's disk may not be larger than `maxImageBytes` (its virtual size: what a desktop reserves). */
export async function checkImageSize(
  ports: Pick<Ports, "quotas">,
  defaults: QuotaLimits,
  tenantId: string,
  virtualSizeBytes: number,
): Promise<void> {
  const { limits } = await limitsOf(ports, defaults, tenantId);
  if (virtualSizeBytes > limits.maxImageBytes)
    throw quotaExceeded({
      name: "maxImageBytes",
      limit: limits.maxImageBytes,
      used: 0,
      requested: virtualSizeBytes,
    });
}
