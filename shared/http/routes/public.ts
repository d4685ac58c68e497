/** The open routes: health and the web console's files. */

import * as r from "../responses.ts";
import { type ApiRoute, json, route } from "../route.ts";
import * as s from "../schemas.ts";
import { consoleAssetDir, serveAsset } from "../static-assets.ts";

export const publicRoutes: ApiRoute[] = [
  route({
    access: "public",
    method: "GET",
    path: "/health",
    summary: "The API answers",
    responses: { 200: r.health },
    handle: async () => json(200, { status: "ok" }),
  }),
  // The web console (docs/console.md): static files, no data; the page calls the API with the user's key.
  route({
    access: "public",
    method: "GET",
    path: "/console",
    summary: "The web console's page (it calls this API with the key its user types)",
    responses: { 200: { media: ["text/html"] } },
    handle: () => serveAsset(consoleAssetDir(), "index.html"),
  }),
  route({
    access: "public",
    method: "GET",
    path: "/console/{asset}",
    params: { asset: s.assetName },
    summary: "The web console's scripts, styles and source maps",
    responses: { 200: { media: ["text/javascript", "text/css", "application/json"] } },
    handle: ({ params }) => serveAsset(consoleAssetDir(), params.asset),
  }),
];
