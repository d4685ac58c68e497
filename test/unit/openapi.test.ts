import { compileErrors, validate } from "@readme/openapi-parser";
import { describe, expect, it } from "vitest";
import { type ProblemKey, problemCatalogue, problemType } from "../../shared/domain/problems.ts";
import { apiDocument, routes } from "../../shared/http/routes.ts";
import { assertMatchesContract } from "../support/contract.ts";

const doc = apiDocument();

describe("the OpenAPI document", () => {
  it("is a valid OpenAPI 3.1 document (checked by @readme/openapi-parser)", async () => {
    // The validator dereferences in place: give it a copy.
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid, result.valid ? "" : compileErrors(result)).toBe(true);
    expect(result.warnings).toEqual([]);
  });

  it("names every route of the table with its answers, and every problem type", () => {
    const paths = doc.paths as Record<string, Record<string, { responses: Record<string, unknown> }>>;
    for (const route of routes) {
      const operation = paths[route.path]?.[route.method.toLowerCase()];
      expect(operation, `${route.method} ${route.path}`).toBeDefined();
      for (const status of Object.keys(route.responses)) expect(operation?.responses).toHaveProperty(status);
    }
    const types = (doc.components.schemas.Problem as { properties: { type: { enum: string[] } } }).properties
      .type.enum;
    expect(types).toEqual(Object.keys(problemCatalogue).map((k) => problemType(k as ProblemKey)));
  });
});

describe("answers checked against the document", () => {
  const pool = {
    tenantId: "t-1",
    poolId: "p-1",
    name: "call-center",
    imageId: "img-1",
    imageVersion: 1,
    assignment: "floating",
    cloneType: "linked",
    refreshPolicy: "refresh",
    size: 3,
    datastoreIds: ["ds-default"],
    state: "ACTIVE",
    createdAt: "2026-11-30T10:00:00.000Z",
  };
  const json = (status: number, body: unknown) => ({
    status,
    contentType: "application/json",
    text: JSON.stringify(body),
  });

  it("lets a right answer through", () => {
    expect(() => assertMatchesContract("GET", "/v1/pools", json(200, { items: [pool] }))).not.toThrow();
  });

  it.each([
    ["a field the contract does not name", { items: [{ ...pool, secret: "x" }] }, /must NOT have additional/],
    ["a state it does not know", { items: [{ ...pool, state: "SLEEPING" }] }, /must be equal to one of/],
    [
      "a missing required field",
      { items: [{ ...pool, poolId: undefined }] },
      /must have required property 'poolId'/,
    ],
    ["a wrong type", { items: [{ ...pool, size: "3" }] }, /must be integer/],
  ])("catches %s", (_, body, message) => {
    expect(() => assertMatchesContract("GET", "/v1/pools", json(200, body))).toThrow(message);
  });

  it("catches a status, a media type or a problem the contract does not list", () => {
    expect(() => assertMatchesContract("GET", "/v1/pools", json(201, { items: [] }))).toThrow(/lists no 201/);
    expect(() =>
      assertMatchesContract("GET", "/v1/sessions/ses-1/screenshot", json(200, { png: "..." })),
    ).toThrow(/not image\/png/);
    expect(() =>
      assertMatchesContract("GET", "/v1/pools/p-1", {
        status: 404,
        contentType: "application/problem+json",
        text: JSON.stringify({ type: "about:blank", title: "x", status: 404, detail: "x" }),
      }),
    ).toThrow(/must be equal to one of/);
    expect(() => assertMatchesContract("DELETE", "/v1/images/i-1/versions/1", json(204, {}))).toThrow(
      /document says none/,
    );
  });
});
