/**
 * The API's route table (DESIGN.md §4): who may call each route, the schemas of its path and body,
 * and the one domain call it makes. Tests take the table as it is (fuzzing, tenant isolation), so
 * a new route is covered without editing them.
 */
import { z } from "zod";
import { openApiDocument } from "./openapi.ts";
import { type ApiRoute, json, route } from "./route.ts";
import { adminRoutes } from "./routes/admin.ts";
import { drRoutes } from "./routes/dr.ts";
import { imageRoutes } from "./routes/images.ts";
import { poolRoutes } from "./routes/pools.ts";
import { publicRoutes } from "./routes/public.ts";
import { quotaRoutes } from "./routes/quotas.ts";
import { sessionRoutes } from "./routes/sessions.ts";

export type { Access, ApiRoute, Ctx } from "./route.ts";

export const routes: ApiRoute[] = [
  ...publicRoutes,
  route({
    access: "public",
    method: "GET",
    path: "/v1/openapi.json",
    summary: "This API's OpenAPI 3.1 document",
    responses: { 200: z.looseObject({ openapi: z.literal("3.1.0") }) },
    handle: async () => json(200, apiDocument()),
  }),
  ...adminRoutes,
  ...quotaRoutes,
  ...imageRoutes,
  ...poolRoutes,
  ...sessionRoutes,
  ...drRoutes,
];

let document: ReturnType<typeof openApiDocument> | undefined;
/** Made once per process, from the table above. */
export function apiDocument() {
  document ??= openApiDocument(routes, "1");
  return document;
}
