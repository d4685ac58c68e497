import type { QuotaLimits, TenantUsage } from "../domain/model.ts";

/**
 * What a write takes from its tenant's usage, in the same transaction as the write itself. With
 * `limits`, the write is refused when the usage would pass them; without, it is counted only (the
 * operator's own moves, a failover: the tenant did not ask for them).
 */
export interface TenantCharge {
  tenantId: string;
  desktops: number;
  provisionedBytes: number;
  limits?: Pick<QuotaLimits, "maxDesktops" | "maxProvisionedBytes">;
}

export interface QuotaRepository {
  /** The operator's overrides of a tenant's quotas (the defaults apply to the rest). */
  getOverrides(tenantId: string): Promise<Partial<QuotaLimits>>;
  /** Replaces the overrides: a quota left out goes back to its default. */
  putOverrides(tenantId: string, overrides: Partial<QuotaLimits>): Promise<void>;
  /** The tenant's usage counters (zero before its first desktop or image). */
  usage(tenantId: string): Promise<TenantUsage>;
}
