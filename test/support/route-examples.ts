/**
 * Requests made from the API's own route table: a valid example of each route's path and body
 * (from its zod schemas, through JSON Schema), and hostile variations of them. Fuzzing and the
 * tenant-isolation matrix use these, so a new route is covered without editing either test.
 */
import fc from "fast-check";
import { z } from "zod";
import { type ApiRoute, routes } from "../../shared/http/routes.ts";

type JsonSchema = {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  minItems?: number;
  anyOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
};

export const apiRoutes: ApiRoute[] = routes;

export const jsonSchemaOf = (schema: z.ZodType) =>
  z.toJSONSchema(schema, { unrepresentable: "any", io: "input" }) as JsonSchema;

/** Values for fields and parameters by name: real ids of the objects a test made. */
export type Ids = Record<string, unknown>;

/** A minimal valid value of a schema; fields named in `ids` take those values. */
export function exampleOf(schema: JsonSchema, ids: Ids, key?: string): unknown {
  if (key !== undefined && ids[key] !== undefined) return ids[key];
  if (schema.anyOf) {
    const concrete =
      schema.anyOf.find((s) => s.type !== undefined || s.anyOf || s.enum) ?? schema.anyOf[0] ?? {};
    return exampleOf(concrete, ids, key);
  }
  if (schema.enum) return schema.enum[0];
  if (schema.const !== undefined) return schema.const;
  switch (schema.type) {
    case "object": {
      const out: Record<string, unknown> = {};
      for (const name of schema.required ?? [])
        out[name] = exampleOf(schema.properties?.[name] ?? {}, ids, name);
      return out;
    }
    case "array":
      return Array.from({ length: Math.max(1, schema.minItems ?? 1) }, () =>
        exampleOf(schema.items ?? {}, ids, key),
      );
    case "string":
      return key === "userId" ? "user-1" : "x".repeat(Math.max(1, schema.minLength ?? 1));
    case "integer":
    case "number":
      return schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : 1);
    case "boolean":
      return true;
    default:
      return undefined;
  }
}

/** A request to a route: its path filled in, and a body. */
export interface Probe {
  route: ApiRoute;
  path: string;
  body: unknown;
  /** Raw text instead of JSON, when set. */
  raw?: string;
  contentType?: string;
}

export const fillPath = (route: ApiRoute, params: Record<string, string>) =>
  route.path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(params[name] ?? "x"));

/** The valid request of a route, on the objects in `ids`. */
export function validProbe(route: ApiRoute, ids: Ids): Probe {
  const params = Object.fromEntries(
    Object.keys(route.params).map((name) => [name, String(ids[name] ?? "x")]),
  );
  return {
    route,
    path: fillPath(route, params),
    body: route.body ? exampleOf(jsonSchemaOf(route.body), ids) : undefined,
  };
}

const hostileStrings = fc.oneof(
  fc.constantFrom(
    "..",
    ".",
    "../../etc/passwd",
    "%2e%2e",
    "a/b",
    "\u0000",
    "\u202Eexe.txt",
    "😀",
    "ünïcödé",
    " ",
    "null",
    "' OR 1=1 --",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a hostile input, on purpose
    "${jndi:ldap://x}",
    "x".repeat(300),
  ),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: "binary", maxLength: 40 }),
);

/** Values of every JSON kind, wrong types and out-of-range numbers among them. */
const hostileValues: fc.Arbitrary<unknown> = fc.oneof(
  hostileStrings,
  fc.constantFrom(-1, 0, 1e-300, 1e300, -1e300, Number.MAX_SAFE_INTEGER + 2, 0.5, null, true, false, [], {}),
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.json().map((j) => JSON.parse(j) as unknown),
);

/** A body of nested arrays, `depth` deep. */
const deep = (depth: number) => JSON.parse(`${"[".repeat(depth)}${"]".repeat(depth)}`) as unknown;

/** Hostile variations of a route's valid request. */
export function hostileProbes(route: ApiRoute, ids: Ids): fc.Arbitrary<Probe> {
  const valid = validProbe(route, ids);
  const paramNames = Object.keys(route.params);
  const validBody = valid.body;
  const bodyMutations: fc.Arbitrary<Partial<Probe>>[] = [
    // One field replaced by a hostile value, removed, or an extra one added.
    fc.record({ field: fc.string({ maxLength: 12 }), value: hostileValues }).map(({ field, value }) => {
      const base = typeof validBody === "object" && validBody !== null ? { ...(validBody as object) } : {};
      const keys = Object.keys(base);
      const target =
        keys.length > 0 && field.length % 2 === 0 ? (keys[field.length % keys.length] as string) : field;
      return { body: { ...base, [target]: value } };
    }),
    fc.nat().map((n) => {
      const base =
        typeof validBody === "object" && validBody !== null
          ? { ...(validBody as Record<string, unknown>) }
          : {};
      const keys = Object.keys(base);
      if (keys.length > 0) delete base[keys[n % keys.length] as string];
      return { body: base };
    }),
    hostileValues.map((body) => ({ body })),
    fc.constantFrom<Partial<Probe>>(
      { raw: "{not json" },
      { raw: "" },
      { raw: "x".repeat(70 * 1024) },
      { raw: JSON.stringify(deep(2000)) },
      { raw: JSON.stringify(validBody ?? {}), contentType: "text/plain" },
      { raw: "\uFEFF{}" },
      { raw: Buffer.from([0xff, 0xfe, 0xfd]).toString("latin1") },
    ),
  ];
  const pathMutations: fc.Arbitrary<Partial<Probe>>[] = paramNames.length
    ? [
        fc.record({ which: fc.nat(), value: hostileStrings }).map(({ which, value }) => {
          const params = Object.fromEntries(paramNames.map((n) => [n, String(ids[n] ?? "x")]));
          params[paramNames[which % paramNames.length] as string] = value;
          return { path: fillPath(route, params) };
        }),
        fc.constantFrom<Partial<Probe>>(
          { path: route.path.replace(/\{\w+\}/, "%E0") },
          { path: route.path.replace(/\{\w+\}/, "%ZZ") },
          { path: route.path.replace(/\{\w+\}/, "%") },
        ),
      ]
    : [];
  return fc.oneof(...bodyMutations, ...pathMutations).map((m) => {
    const probe = { ...valid, ...m };
    return { ...probe, path: probe.path.replace(/\{\w+\}/g, "x") };
  });
}
