import type { APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import type { z } from "zod";
import { DomainError, type QuotaBreach, RetryLater } from "../domain/errors.ts";
import { type ProblemKey, problemCatalogue, problemType } from "../domain/problems.ts";

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  field?: string;
  errors?: { field: string; message: string }[];
  quota?: QuotaBreach;
}

export function problemResponse(
  problem: Problem,
  headers: Record<string, string> = {},
): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode: problem.status,
    headers: { "content-type": "application/problem+json", ...headers },
    body: JSON.stringify(problem),
  };
}

/** A problem of the catalogue with this request's detail (and, for bad input, the field). */
export function problem(key: ProblemKey, detail: string, extra: Partial<Problem> = {}): Problem {
  const spec = problemCatalogue[key];
  return { type: problemType(key), title: spec.title, status: spec.status, detail, ...extra };
}

/** Thrown at the edge (routing, parsing, validation); mapped to a problem response. */
export class HttpProblem extends Error {
  readonly problem: Problem;
  readonly headers: Record<string, string>;
  constructor(p: Problem, headers: Record<string, string> = {}) {
    super(p.detail);
    this.problem = p;
    this.headers = headers;
  }
}

export function validationProblem(where: "body" | "path" | "query", error: z.ZodError): HttpProblem {
  const errors = error.issues.map((issue) => ({
    field: [where, ...issue.path.map(String)].join("."),
    message: issue.message,
  }));
  const first = errors[0] ?? { field: where, message: "invalid" };
  return new HttpProblem(
    problem("validation", `${first.field}: ${first.message}`, { field: first.field, errors }),
  );
}

/** Maps any error to a response; only a genuine bug becomes a 500, and its message stays in the logs. */
export function errorToResponse(err: unknown): {
  response: APIGatewayProxyStructuredResultV2;
  unexpected: boolean;
} {
  if (err instanceof HttpProblem)
    return { response: problemResponse(err.problem, err.headers), unexpected: false };
  if (err instanceof DomainError) {
    const headers: Record<string, string> = err.retryAfterSeconds
      ? { "retry-after": String(err.retryAfterSeconds) }
      : {};
    const extra = { ...(err.field ? { field: err.field } : {}), ...(err.quota ? { quota: err.quota } : {}) };
    return {
      response: problemResponse(problem(err.problem, err.message, extra), headers),
      unexpected: false,
    };
  }
  if (err instanceof RetryLater) {
    return {
      response: problemResponse(problem("tryAgain", err.message), { "retry-after": "1" }),
      unexpected: false,
    };
  }
  return {
    response: problemResponse(problem("internal", "an unexpected error occurred; it has been logged")),
    unexpected: true,
  };
}
