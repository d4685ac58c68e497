/**
 * The OpenAPI 3.1 document of the v1 API, generated from the route table: the same zod schemas
 * validate requests, describe answers and make this document, so there is one contract.
 */
import { z } from "zod";
import { quotaNames } from "../domain/model.ts";
import { type ProblemSpec, problemCatalogue, problemTypeBase } from "../domain/problems.ts";

type JsonSchema = Record<string, unknown>;

/** A success answer: its JSON body's schema, files of these media types, or no body. */
export type Answer = z.ZodType | { media: string[] } | "no-body";

/** What the document needs of a route (the route table's entries have it). */
export interface DocumentedRoute {
  method: string;
  path: string;
  access: "public" | "operator" | "tenant";
  replayable: boolean;
  params: Record<string, z.ZodType>;
  body: z.ZodType | undefined;
  query: z.ZodObject | undefined;
  summary: string;
  /** The success answers by status; problems are common to all routes. */
  responses: Record<number, Answer>;
}

const problemTypes = Object.values(problemCatalogue) as ProblemSpec[];

/** RFC 9457 problem details, with the catalogue's types. */
const problemSchema: JsonSchema = {
  type: "object",
  required: ["type", "title", "status", "detail"],
  properties: {
    type: {
      type: "string",
      enum: problemTypes.map((p) => `${problemTypeBase}${p.slug}`),
      description: problemTypes.map((p) => `- \`${p.slug}\` (${p.status}): ${p.when}`).join("\n"),
    },
    title: { type: "string" },
    status: { type: "integer", minimum: 400, maximum: 599 },
    detail: { type: "string" },
    field: { type: "string", description: "the input that was refused, e.g. `body.size`" },
    errors: {
      type: "array",
      items: {
        type: "object",
        required: ["field", "message"],
        properties: { field: { type: "string" }, message: { type: "string" } },
        additionalProperties: false,
      },
    },
    quota: {
      type: "object",
      description:
        "a refusal at a quota: the quota, its limit, what is in use and what the request asked for",
      required: ["name", "limit", "used", "requested"],
      properties: {
        name: { type: "string", enum: [...quotaNames] },
        limit: { type: "number", minimum: 0 },
        used: { type: "number" },
        requested: { type: "number", minimum: 0 },
      },
      additionalProperties: false,
    },
  },
  additionalProperties: false,
};

/** A route body that may be left out is a union with `undefined`: the document says "not required". */
function bodyParts(schema: z.ZodType): { schema: z.ZodType; required: boolean } {
  const required = !schema.safeParse(undefined).success;
  if (required || !(schema instanceof z.ZodUnion)) return { schema, required };
  const present = (schema.options as z.ZodType[]).filter((o) => !(o instanceof z.ZodUndefined));
  return { schema: present.length === 1 ? (present[0] as z.ZodType) : z.union(present), required };
}

/** Converts a zod schema, moving named definitions into the document's components. */
function converter(components: Record<string, JsonSchema>) {
  return (schema: z.ZodType, io: "input" | "output"): JsonSchema => {
    const {
      $schema: _,
      $defs,
      ...json
    } = z.toJSONSchema(schema, {
      target: "draft-2020-12",
      io,
      unrepresentable: "any",
    }) as JsonSchema & { $defs?: Record<string, JsonSchema> };
    const relink = (value: unknown) =>
      JSON.parse(JSON.stringify(value).replaceAll('"#/$defs/', '"#/components/schemas/')) as JsonSchema;
    for (const [name, def] of Object.entries($defs ?? {})) components[name] = relink(def);
    return relink(json);
  };
}

const problemResponse = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
});

function answer(toJson: ReturnType<typeof converter>, spec: Answer, description: string) {
  if (spec === "no-body") return { description };
  if ("media" in spec)
    return {
      description,
      content: Object.fromEntries(
        spec.media.map((type) => [type, { schema: { type: "string", contentMediaType: type } }]),
      ),
    };
  return { description, content: { "application/json": { schema: toJson(spec, "output") } } };
}

export function openApiDocument(routes: readonly DocumentedRoute[], version: string) {
  const components: Record<string, JsonSchema> = { Problem: problemSchema };
  const toJson = converter(components);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const parameters = Object.entries(route.params).map(([name, schema]) => ({
      name,
      in: "path",
      required: true,
      schema: toJson(schema, "input"),
    }));
    const query = Object.entries(route.query?.shape ?? {}).map(([name, schema]) => ({
      name,
      in: "query",
      required: false,
      schema: toJson(schema as z.ZodType, "input"),
    }));
    const body = route.body ? bodyParts(route.body) : undefined;
    const writes = route.method !== "GET";
    const operation = {
      operationId: `${route.method.toLowerCase()}${route.path
        .replace(/[{}]/g, "")
        .replace(/\/(\w)/g, (_, c: string) => c.toUpperCase())
        .replace(/[^A-Za-z0-9]/g, "")}`,
      summary: route.summary,
      tags: [route.access === "operator" ? "operator" : (route.path.split("/")[2] ?? "health")],
      ...(route.access === "public" ? { security: [] } : {}),
      parameters: [
        ...parameters,
        ...query,
        ...(writes && route.replayable
          ? [
              {
                name: "Idempotency-Key",
                in: "header",
                required: false,
                description: "A retry with the same key and body gets the first answer again (24 h).",
                schema: { type: "string", pattern: "^[\\x21-\\x7e]{1,255}$" },
              },
            ]
          : []),
      ],
      ...(body
        ? {
            requestBody: {
              required: body.required,
              content: { "application/json": { schema: toJson(body.schema, "input") } },
            },
          }
        : {}),
      responses: {
        ...Object.fromEntries(
          Object.entries(route.responses).map(([status, spec]) => [
            status,
            answer(toJson, spec, route.summary),
          ]),
        ),
        "4XX": problemResponse("The request was refused; `type` says why and nothing changed."),
        "5XX": problemResponse("The service could not answer; `Retry-After` says when to try again."),
      },
    };
    paths[route.path] = { ...paths[route.path], [route.method.toLowerCase()]: operation };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Pristine API",
      version,
      description:
        "Control plane for non-persistent virtual desktops on linked clones. Errors are RFC 9457 problem details.",
    },
    servers: [{ url: "/" }],
    security: [{ apiKey: [] }],
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        apiKey: {
          type: "http",
          scheme: "bearer",
          description: "A tenant's API key, or the operator key on /v1/admin routes.",
        },
      },
    },
  };
}
