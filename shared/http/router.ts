import type { APIGatewayProxyEventV2 } from "aws-lambda";
import type { z } from "zod";
import { HttpProblem, problem, validationProblem } from "./problem.ts";

export type Method = "GET" | "POST" | "PATCH" | "DELETE" | "PUT";

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Route<C> {
  method: Method;
  /** e.g. "/v1/pools/{poolId}/desktops" */
  path: string;
  handle(ctx: C, request: ParsedRequest): Promise<Reply>;
}

export interface ParsedRequest {
  params: Record<string, string>;
  headers: Record<string, string | undefined>;
  rawBody: string | undefined;
  /** Parses and validates the JSON body; 400 names the offending field. */
  body<T extends z.ZodType>(schema: T): z.infer<T>;
  param<T extends z.ZodType>(name: string, schema: T): z.infer<T>;
  /** Parses and validates the query string; 400 names the offending parameter. */
  query<T extends z.ZodType>(schema: T): z.infer<T>;
}

export const maxBodyBytes = 64 * 1024;

interface Compiled<C> {
  route: Route<C>;
  regex: RegExp;
  names: string[];
}

function compile<C>(route: Route<C>): Compiled<C> {
  const names: string[] = [];
  const pattern = route.path.replace(/\{(\w+)\}/g, (_, name: string) => {
    names.push(name);
    return "([^/]+)";
  });
  return { route, regex: new RegExp(`^${pattern}/?$`), names };
}

export function createRouter<C>(routes: Route<C>[]) {
  const compiled = routes.map(compile);

  return function resolve(event: APIGatewayProxyEventV2): { route: Route<C>; request: ParsedRequest } {
    const method = event.requestContext.http.method.toUpperCase();
    const path = event.rawPath;
    const matches = compiled
      .map((c) => ({ c, m: c.regex.exec(path) }))
      .filter((x): x is { c: Compiled<C>; m: RegExpExecArray } => x.m !== null);
    if (matches.length === 0) throw new HttpProblem(problem("notFound", `no route for ${path}`));
    const hit = matches.find((x) => x.c.route.method === method);
    if (!hit) {
      const allow = [...new Set(matches.map((x) => x.c.route.method))].join(", ");
      throw new HttpProblem(
        problem("methodNotAllowed", `${method} is not allowed on ${path} (allowed: ${allow})`),
        { allow },
      );
    }
    const params: Record<string, string> = {};
    hit.c.names.forEach((name, i) => {
      try {
        params[name] = decodeURIComponent(hit.m[i + 1] ?? "");
      } catch {
        throw new HttpProblem(
          problem("validation", `path.${name}: malformed percent-encoding`, { field: `path.${name}` }),
        );
      }
    });
    const rawBody =
      event.body === undefined || event.body === null
        ? undefined
        : event.isBase64Encoded
          ? Buffer.from(event.body, "base64").toString("utf8")
          : event.body;
    if (rawBody !== undefined && Buffer.byteLength(rawBody) > maxBodyBytes) {
      throw new HttpProblem(problem("payloadTooLarge", `request body exceeds ${maxBodyBytes} bytes`));
    }
    const headers = event.headers ?? {};
    const request: ParsedRequest = {
      params,
      headers,
      rawBody,
      body(schema) {
        let json: unknown;
        if (rawBody !== undefined && rawBody.trim() !== "") {
          const type = headers["content-type"] ?? "";
          if (!/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(type))
            throw new HttpProblem(
              problem("unsupportedMediaType", "a body must be sent as Content-Type: application/json", {
                field: "headers.content-type",
              }),
            );
          try {
            json = JSON.parse(rawBody);
          } catch (err) {
            throw new HttpProblem(
              problem("malformedJson", `body is not valid JSON: ${(err as Error).message}`, {
                field: "body",
              }),
            );
          }
        }
        const parsed = schema.safeParse(json);
        if (!parsed.success) {
          if (json === undefined) {
            throw new HttpProblem(problem("validation", "body: a JSON body is required", { field: "body" }));
          }
          throw validationProblem("body", parsed.error);
        }
        return parsed.data;
      },
      query(schema) {
        const parsed = schema.safeParse(Object.fromEntries(new URLSearchParams(event.rawQueryString ?? "")));
        if (!parsed.success) throw validationProblem("query", parsed.error);
        return parsed.data;
      },
      param(name, schema) {
        const parsed = schema.safeParse(params[name]);
        if (!parsed.success) {
          throw new HttpProblem(
            problem("validation", `path.${name}: ${parsed.error.issues[0]?.message ?? "invalid"}`, {
              field: `path.${name}`,
            }),
          );
        }
        return parsed.data;
      },
    };
    return { route: hit.c.route, request };
  };
}
