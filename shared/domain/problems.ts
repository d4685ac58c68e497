/**
 * The one catalogue of problem types the API answers (RFC 9457 `type` URIs end in the slug). Code
 * names a problem by its key; the slug, status and title live only here, and the API reference's problem
 * list is generated from this table (`npm run docs`).
 */
export interface ProblemSpec {
  /** The stable part of the `type` URI: clients match on it. */
  slug: string;
  status: number;
  title: string;
  /** When it happens, for the reference docs. */
  when: string;
}

export const problemCatalogue = {
  validation: {
    slug: "validation-error",
    status: 400,
    title: "Invalid request",
    when: "A body, path parameter or header is missing or malformed; `field` names it. Nothing changed.",
  },
  malformedJson: {
    slug: "malformed-json",
    status: 400,
    title: "Malformed JSON",
    when: "The body is not JSON at all.",
  },
  apiKeyRequired: {
    slug: "unauthorized",
    status: 401,
    title: "Unauthorized",
    when: "No `Authorization: Bearer <key>`, or a key that is not known.",
  },
  notAllowed: {
    slug: "forbidden",
    status: 403,
    title: "Forbidden",
    when: "A tenant key on an operator route, or the operator key on a tenant route.",
  },
  notFound: {
    slug: "not-found",
    status: 404,
    title: "Not found",
    when: "No such route, or no such object for this tenant (another tenant's ids answer the same).",
  },
  methodNotAllowed: {
    slug: "method-not-allowed",
    status: 405,
    title: "Method not allowed",
    when: "The path exists but not with this method; `Allow` lists the methods.",
  },
  requestInProgress: {
    slug: "request-in-progress",
    status: 409,
    title: "Request in progress",
    when: "A request with the same `Idempotency-Key` is still running; retry after `Retry-After`.",
  },
  poolNotActive: {
    slug: "pool-not-active",
    status: 409,
    title: "Pool not active",
    when: "The pool is being deleted: no logons, resizes or recomposes.",
  },
  sessionNotActive: {
    slug: "session-not-active",
    status: 409,
    title: "Session not active",
    when: "The session has ended: what belonged to it (its desktop's screen) is no longer its own.",
  },
  noScreen: {
    slug: "no-screen",
    status: 409,
    title: "No screen here",
    when: "The desktop's VM is run by another system, which serves its screen.",
  },
  poolChanged: {
    slug: "pool-changed",
    status: 409,
    title: "Pool changed",
    when: "The pool changed under a resize; retry.",
  },
  imageVersionNotReady: {
    slug: "image-version-not-ready",
    status: 409,
    title: "Image version not ready",
    when: "The image version is still publishing or failed; desktops need a READY version.",
  },
  imageVersionRetired: {
    slug: "image-version-retired",
    status: 409,
    title: "Image version retired",
    when: "The image version is retired: no new desktops are made from it.",
  },
  imageVersionInUse: {
    slug: "image-version-in-use",
    status: 409,
    title: "Image version in use",
    when: "The version cannot be deleted while desktops or pools use it, or while it publishes.",
  },
  insufficientCapacity: {
    slug: "insufficient-capacity",
    status: 409,
    title: "Insufficient capacity",
    when: "The allowed datastores cannot hold the desktops; `detail` names the shortfall. Nothing was reserved.",
  },
  quotaExceeded: {
    slug: "quota-exceeded",
    status: 409,
    title: "Quota exceeded",
    when: "The tenant is at one of its quotas (desktops, provisioned bytes, images, an image's size); `quota` names it with its limit, the usage and what was asked. Nothing changed; the operator can raise it.",
  },
  capacityContention: {
    slug: "capacity-contention",
    status: 409,
    title: "Capacity contention",
    when: "Datastore reservations kept changing under the request; retry.",
  },
  hostUnavailable: {
    slug: "host-unavailable",
    status: 409,
    title: "Host unavailable",
    when: "A datastore's host cannot run desktops now (its hypervisor is missing, or it stopped answering); `detail` says why.",
  },
  noRecompose: {
    slug: "no-recompose",
    status: 409,
    title: "No recompose to roll back",
    when: "A rollback of a pool that was never recomposed.",
  },
  tenantFailedOver: {
    slug: "tenant-failed-over",
    status: 409,
    title: "Tenant failed over",
    when: "The tenant is served by the DR region until failback: this region refuses its logons.",
  },
  nothingToFailOver: {
    slug: "nothing-to-fail-over",
    status: 409,
    title: "Nothing to fail over",
    when: "A failover in a region that holds no replicated pools of the tenant.",
  },
  notFailedOver: {
    slug: "not-failed-over",
    status: 409,
    title: "Not failed over",
    when: "A failback of a tenant that is not failed over to this region.",
  },
  forkResolved: {
    slug: "fork-resolved",
    status: 409,
    title: "Fork already resolved",
    when: "A resolution of a user-data fork that was already resolved (or is being resolved) the other way.",
  },
  userDataInUse: {
    slug: "user-data-in-use",
    status: 409,
    title: "User data in use",
    when: "The user is logged on (their data disk has a writer): a fork is resolved once they log off.",
  },
  poolDeleted: {
    slug: "pool-deleted",
    status: 410,
    title: "Pool deleted",
    when: "A drill of a pool that was deleted in the primary region: its standby configuration in the DR region is gone too.",
  },
  payloadTooLarge: {
    slug: "payload-too-large",
    status: 413,
    title: "Payload too large",
    when: "The body exceeds 64 KiB.",
  },
  unsupportedMediaType: {
    slug: "unsupported-media-type",
    status: 415,
    title: "Unsupported media type",
    when: "A body that is not sent as `application/json`.",
  },
  idempotencyKeyReused: {
    slug: "idempotency-key-reused",
    status: 422,
    title: "Idempotency key reused",
    when: "The same `Idempotency-Key` came with another body.",
  },
  internal: {
    slug: "internal-error",
    status: 500,
    title: "Internal error",
    when: "A bug: the details are in the logs, never in the answer.",
  },
  noDesktopAvailable: {
    slug: "no-desktop-available",
    status: 503,
    title: "No desktop available",
    when: "Every desktop of the pool is taken; retry after `Retry-After` seconds.",
  },
  desktopNotReady: {
    slug: "desktop-not-ready",
    status: 503,
    title: "Desktop not ready",
    when: "A dedicated user's own desktop is being refreshed or rebuilt, or its host did not answer for a screenshot in time; retry after `Retry-After`.",
  },
  tryAgain: {
    slug: "try-again",
    status: 503,
    title: "Try again",
    when: "Another write to the same object won a race (an API logoff and the desktop's own logoff at once); nothing was half done; retry after `Retry-After`.",
  },
} as const satisfies Record<string, ProblemSpec>;

export type ProblemKey = keyof typeof problemCatalogue;

export const problemTypeBase = "https://pristine.dev/problems/";

export const problemType = (key: ProblemKey) => `${problemTypeBase}${problemCatalogue[key].slug}`;

/** The catalogue as a Markdown table (docs/api.md, Problem types). */
export function problemTableMarkdown(): string {
  const rows = Object.values(problemCatalogue).map(
    (p: ProblemSpec) => `| \`${p.slug}\` | ${p.status} | ${p.title} | ${p.when} |`,
  );
  return ["| type | status | title | when |", "| --- | --- | --- | --- |", ...rows].join("\n");
}
