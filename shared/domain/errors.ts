/**
 * Domain errors carry a stable problem `type` slug and an HTTP-ish status so the edge can map
 * them without the domain knowing about HTTP. Workers treat `retryable` errors as "try later".
 */
export class DomainError extends Error {
  readonly type: string;
  readonly status: number;
  readonly field: string | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    type: string,
    status: number,
    message: string,
    extra: { field?: string; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.name = "DomainError";
    this.type = type;
    this.status = status;
    this.field = extra.field;
    this.retryAfterSeconds = extra.retryAfterSeconds;
  }
}

export const notFound = (what: string, id: string) =>
  new DomainError("not-found", 404, `${what} ${id} does not exist`);

export const invalid = (field: string, message: string) =>
  new DomainError("validation-error", 400, `${field}: ${message}`, { field });

export const conflict = (type: string, message: string) => new DomainError(type, 409, message);

export const noDesktopAvailable = (poolId: string) =>
  new DomainError(
    "no-desktop-available",
    503,
    `pool ${poolId} has no free desktop right now; retry shortly`,
    {
      retryAfterSeconds: 5,
    },
  );

export const unauthorized = () =>
  new DomainError("unauthorized", 401, "missing or unknown API key (Authorization: Bearer <key>)");

export const forbidden = (message: string) => new DomainError("forbidden", 403, message);

/** A condition the worker expects to clear by itself (e.g. an image still publishing). */
export class RetryLater extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RetryLater";
  }
}
