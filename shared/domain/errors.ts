import type { QuotaName } from "./model.ts";
import { type ProblemKey, problemCatalogue } from "./problems.ts";

/** Which quota a refusal hit, its limit, what is in use and what the request asked for. */
export interface QuotaBreach {
  name: QuotaName;
  limit: number;
  used: number;
  requested: number;
}

/**
 * A refusal the caller can act on: it names a problem of the catalogue (which carries the status
 * and slug), so the domain never picks HTTP numbers itself. In a worker it means "this will never
 * succeed": the job records it and stops instead of retrying.
 */
export class DomainError extends Error {
  readonly problem: ProblemKey;
  readonly field: string | undefined;
  readonly retryAfterSeconds: number | undefined;
  readonly quota: QuotaBreach | undefined;

  constructor(
    problem: ProblemKey,
    message: string,
    extra: { field?: string; retryAfterSeconds?: number; quota?: QuotaBreach } = {},
  ) {
    super(message);
    this.name = "DomainError";
    this.problem = problem;
    this.field = extra.field;
    this.retryAfterSeconds = extra.retryAfterSeconds;
    this.quota = extra.quota;
  }

  get status(): number {
    return problemCatalogue[this.problem].status;
  }
}

export const notFound = (what: string, id: string) =>
  new DomainError("notFound", `${what} ${id} does not exist`);

export const invalid = (field: string, message: string) =>
  new DomainError("validation", `${field}: ${message}`, { field });

export const noDesktopAvailable = (poolId: string) =>
  new DomainError("noDesktopAvailable", `pool ${poolId} has no free desktop right now; retry shortly`, {
    retryAfterSeconds: 5,
  });

export const unauthorized = () =>
  new DomainError("apiKeyRequired", "missing or unknown API key (Authorization: Bearer <key>)");

export const forbidden = (message: string) => new DomainError("notAllowed", message);

/**
 * The one way a job says "not yet": a condition expected to clear by itself (an image still
 * publishing, a delta waiting for the one before it, a write that collided). The worker fails
 * the message quietly and SQS delivers it again; any other Error is a fault and is logged as one.
 */
export class RetryLater extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RetryLater";
  }
}
