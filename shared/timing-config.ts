/** The region's timings (caches, staleness, schedules), each from its own environment variable. */
import { z } from "zod";

export interface Timing {
  /** How long an API key's principal is cached per process (like an authorizer cache). */
  keyCacheMs?: number;
  /** A desktop in a transitional state longer than this gets its job again. */
  reconcileStaleAfterMs?: number;
  /** A host whose heartbeat is older than this has its desktops withdrawn. */
  hostDeadlineMs?: number;
  /** The DR readiness schedule's period: one check per tenant and period (default 15 minutes). */
  readinessPeriodMs?: number;
  /** Users whose DR copy each check verifies (the sample rotates through all users; default 20). */
  readinessSampleUsers?: number;
}

const millis = z.coerce
  .number()
  .int()
  .min(0)
  .max(7 * 24 * 3_600_000)
  .optional();
const timingSchema = z.object({
  PRISTINE_KEY_CACHE_MS: millis,
  PRISTINE_RECONCILE_STALE_AFTER_MS: millis,
  PRISTINE_HOST_DEADLINE_MS: millis,
  PRISTINE_READINESS_PERIOD_MS: millis.pipe(z.number().int().positive().optional()),
  PRISTINE_READINESS_SAMPLE_USERS: z.coerce.number().int().min(1).max(1000).optional(),
});

/** The timings of an environment, checked (a typo is an error, never a NaN). */
export function timingFromEnv(env: NodeJS.ProcessEnv = process.env): Timing {
  const parsed = timingSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid configuration: ${problems}`);
  }
  const t = parsed.data;
  return {
    ...(t.PRISTINE_KEY_CACHE_MS !== undefined ? { keyCacheMs: t.PRISTINE_KEY_CACHE_MS } : {}),
    ...(t.PRISTINE_RECONCILE_STALE_AFTER_MS !== undefined
      ? { reconcileStaleAfterMs: t.PRISTINE_RECONCILE_STALE_AFTER_MS }
      : {}),
    ...(t.PRISTINE_HOST_DEADLINE_MS !== undefined ? { hostDeadlineMs: t.PRISTINE_HOST_DEADLINE_MS } : {}),
    ...(t.PRISTINE_READINESS_PERIOD_MS !== undefined
      ? { readinessPeriodMs: t.PRISTINE_READINESS_PERIOD_MS }
      : {}),
    ...(t.PRISTINE_READINESS_SAMPLE_USERS !== undefined
      ? { readinessSampleUsers: t.PRISTINE_READINESS_SAMPLE_USERS }
      : {}),
  };
}
