/** The region's default quotas from the environment (docs/configuration.md); the operator overrides them per tenant. */
import { z } from "zod";
import type { QuotaLimits } from "./domain/model.ts";
import { GiB } from "./domain/placement.ts";
import { defaultQuotas } from "./domain/quotas.ts";

const count = z.coerce.number().int().min(0).max(1_000_000).optional();
const gib = z.coerce
  .number()
  .min(0)
  .max(1024 * 1024)
  .optional();
const quotaSchema = z.object({
  PRISTINE_QUOTA_DESKTOPS: count,
  PRISTINE_QUOTA_PROVISIONED_GIB: gib,
  PRISTINE_QUOTA_IMAGES: count,
  PRISTINE_QUOTA_IMAGE_GIB: gib,
});

/** The defaults of an environment, checked (a typo is an error, never a NaN). */
export function quotaDefaultsFromEnv(env: NodeJS.ProcessEnv = process.env): QuotaLimits {
  const parsed = quotaSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid configuration: ${problems}`);
  }
  const e = parsed.data;
  const bytes = (n: number | undefined) => (n === undefined ? undefined : Math.floor(n * GiB));
  return {
    maxDesktops: e.PRISTINE_QUOTA_DESKTOPS ?? defaultQuotas.maxDesktops,
    maxProvisionedBytes: bytes(e.PRISTINE_QUOTA_PROVISIONED_GIB) ?? defaultQuotas.maxProvisionedBytes,
    maxImages: e.PRISTINE_QUOTA_IMAGES ?? defaultQuotas.maxImages,
    maxImageBytes: bytes(e.PRISTINE_QUOTA_IMAGE_GIB) ?? defaultQuotas.maxImageBytes,
  };
}

/** The environment that `quotaDefaultsFromEnv` reads back as these defaults. */
export function quotaEnvironment(q: QuotaLimits | undefined): Record<string, string> {
  if (!q) return {};
  return {
    PRISTINE_QUOTA_DESKTOPS: String(q.maxDesktops),
    PRISTINE_QUOTA_PROVISIONED_GIB: String(q.maxProvisionedBytes / GiB),
    PRISTINE_QUOTA_IMAGES: String(q.maxImages),
    PRISTINE_QUOTA_IMAGE_GIB: String(q.maxImageBytes / GiB),
  };
}
