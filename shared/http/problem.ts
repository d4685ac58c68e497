import type { APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import type { z } from "zod";
import { DomainError } from "../domain/errors.ts";

export const problemBase = "https://pristine.dev/problems/";

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  field?: string;
  errors?: { field: string; message: string }[];
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

const titles: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export function problem(status: number, slug: string, detail: string, extra: Partial<Problem> = {}): Problem {
  return { type: `${problemBase}${slug}`, title: titles[status] ?? "Error", status, detail, ...extra };
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
    problem(400, "validation-error", `${first.field}: ${first.message}`, { field: first.field, errors }),
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
    const field = err.field ? { field: err.field } : {};
    return {
      response: problemResponse(problem(err.status, err.type, err.message, field), headers),
      unexpected: false,
    };
  }
  return {
    response: problemResponse(
      problem(500, "internal-error", "an unexpected error occurred; it has been logged"),
    ),
    unexpected: true,
  };
}
