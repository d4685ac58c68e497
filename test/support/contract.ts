/**
 * Checks answers against the API's OpenAPI document: a test fails when the code answers something
 * the contract does not say (a status it does not list, a field it does not name, a wrong type).
 */
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import { apiDocument } from "../../shared/http/routes.ts";

interface Operation {
  responses: Record<string, { content?: Record<string, { schema: object }> }>;
}

const document = apiDocument();
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema({ $id: "pristine", components: document.components }, "pristine");

const templates = Object.entries(document.paths as Record<string, Record<string, Operation>>).map(
  ([template, operations]) => ({
    regex: new RegExp(`^${template.replace(/\{\w+\}/g, "[^/]+")}/?$`),
    operations,
  }),
);

const validators = new Map<object, ValidateFunction>();
function validatorFor(schema: object): ValidateFunction {
  let v = validators.get(schema);
  if (!v) {
    // Refs point into the document's components.
    const rebased = JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"pristine#/components/'));
    v = ajv.compile(rebased);
    validators.set(schema, v);
  }
  return v;
}

const problemSchema = { $ref: "#/components/schemas/Problem" };

/** Throws when this answer is not one the document allows for the request. */
export function assertMatchesContract(
  method: string,
  url: string,
  answer: { status: number; contentType: string | null; text: string },
): void {
  const path = new URL(url, "http://x").pathname;
  const where = `${method} ${path} answered ${answer.status}`;
  const operation = templates.find((t) => t.regex.exec(path) !== null)?.operations[method.toLowerCase()];
  let schema: object | undefined;
  let type: string;
  if (answer.status >= 400) {
    // Any path (a route or not) answers problems the same way.
    schema = problemSchema;
    type = "application/problem+json";
  } else {
    if (!operation) throw new Error(`${where}: the API document has no ${method} ${path}`);
    const response = operation.responses[String(answer.status)];
    if (!response) throw new Error(`${where}: the API document lists no ${answer.status} for it`);
    const contents = Object.entries(response.content ?? {});
    if (contents.length === 0) {
      if (answer.text !== "") throw new Error(`${where} with a body; the document says none`);
      return;
    }
    const content =
      contents.find(([t]) => answer.contentType?.startsWith(t)) ?? (contents[0] as (typeof contents)[0]);
    [type, { schema }] = [content[0], content[1]];
  }
  if (!answer.contentType?.startsWith(type))
    throw new Error(`${where} as ${answer.contentType}, not ${type}`);
  // Files (a PNG, the console's scripts and source maps) are checked by media type only.
  if (!type.endsWith("json") || "contentMediaType" in (schema as object)) return;
  const body = JSON.parse(answer.text) as unknown;
  const validate = validatorFor(schema as object);
  if (!validate(body)) {
    const errors = (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}`).join("; ");
    throw new Error(
      `${where}, which the API document does not allow: ${errors}\n${answer.text.slice(0, 2000)}`,
    );
  }
}
