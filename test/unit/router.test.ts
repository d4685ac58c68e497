import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { DomainError, noDesktopAvailable, RetryLater } from "../../shared/domain/errors.ts";
import { errorToResponse, HttpProblem } from "../../shared/http/problem.ts";
import { createRouter, maxBodyBytes, type Route } from "../../shared/http/router.ts";
import { createPoolBody, logonBody } from "../../shared/http/schemas.ts";

const ok = async () => ({ status: 200 });
const routes: Route<null>[] = [
  { method: "GET", path: "/v1/pools/{poolId}", handle: ok },
  { method: "DELETE", path: "/v1/pools/{poolId}", handle: ok },
  { method: "POST", path: "/v1/pools", handle: ok },
];
const resolve = createRouter(routes);

function event(method: string, path: string, body?: string): APIGatewayProxyEventV2 {
  return {
    rawPath: path,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    requestContext: { http: { method } },
    ...(body !== undefined ? { body } : {}),
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEventV2;
}

function problemOf(fn: () => unknown) {
  try {
    fn();
  } catch (err) {
    if (err instanceof HttpProblem) return err;
    throw err;
  }
  throw new Error("expected a problem");
}

describe("router", () => {
  it("matches path parameters and decodes them", () => {
    const { request } = resolve(event("GET", "/v1/pools/pool-a%2Db"));
    expect(request.params.poolId).toBe("pool-a-b");
  });

  it("answers 404 for unknown paths and 405 with Allow for known ones", () => {
    expect(problemOf(() => resolve(event("GET", "/v2/nope"))).problem.status).toBe(404);
    const p = problemOf(() => resolve(event("PATCH", "/v1/pools/x")));
    expect(p.problem.status).toBe(405);
    expect(p.headers.allow).toBe("GET, DELETE");
  });

  it("answers 413 for bodies over the limit", () => {
    expect(
      problemOf(() => resolve(event("POST", "/v1/pools", "x".repeat(maxBodyBytes + 1)))).problem.status,
    ).toBe(413);
  });

  it("names the field of an invalid body and reports malformed JSON as 400", () => {
    const { request } = resolve(
      event("POST", "/v1/pools", JSON.stringify({ name: "p", imageId: "img-1", size: -3 })),
    );
    const p = problemOf(() => request.body(createPoolBody));
    expect(p.problem).toMatchObject({ status: 400, field: "body.size" });
    const bad = resolve(event("POST", "/v1/pools", "{oops")).request;
    expect(problemOf(() => bad.body(createPoolBody)).problem).toMatchObject({
      status: 400,
      type: expect.stringMatching(/malformed-json$/),
    });
    const missing = resolve(event("POST", "/v1/pools")).request;
    expect(problemOf(() => missing.body(logonBody)).problem).toMatchObject({ status: 400, field: "body" });
  });
});

describe("problem mapping", () => {
  it("maps domain errors to their status and Retry-After", () => {
    const { response, unexpected } = errorToResponse(noDesktopAvailable("pool-1"));
    expect(unexpected).toBe(false);
    expect(response.statusCode).toBe(503);
    expect(response.headers?.["retry-after"]).toBe("5");
    expect(JSON.parse(response.body ?? "{}").type).toMatch(/no-desktop-available$/);
    expect(errorToResponse(new DomainError("poolChanged", "m")).response.statusCode).toBe(409);
  });

  it("answers a lost write race (RetryLater) with a 503 to retry, not a 500", () => {
    const { response, unexpected } = errorToResponse(
      new RetryLater("logoff of s collided with another write"),
    );
    expect(unexpected).toBe(false);
    expect(response.statusCode).toBe(503);
    expect(response.headers?.["retry-after"]).toBe("1");
    expect(JSON.parse(response.body ?? "{}").type).toMatch(/try-again$/);
  });

  it("turns a bug into a 500 that leaks no message", () => {
    const { response, unexpected } = errorToResponse(new Error("secret internals"));
    expect(unexpected).toBe(true);
    expect(response.statusCode).toBe(500);
    expect(response.body).not.toContain("secret internals");
  });
});
