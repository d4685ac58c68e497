/** Golden images and their versions. */

import {
  createImage,
  deleteVersion,
  getImage,
  listImages,
  publishVersion,
  retireVersion,
} from "../../domain/images.ts";
import * as r from "../responses.ts";
import { type ApiRoute, imageParams, json, quotaDefaults, route, versionParams } from "../route.ts";
import * as s from "../schemas.ts";

export const imageRoutes: ApiRoute[] = [
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/images",
    summary: "Create an image (a name for its versions)",
    responses: { 201: r.image },
    body: s.createImageBody,
    handle: async ({ app, tenantId, body }) =>
      json(201, await createImage(app.ports, tenantId, body, quotaDefaults(app))),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/images",
    summary: "The tenant's images",
    responses: { 200: r.items(r.image) },
    handle: async ({ app, tenantId }) => json(200, { items: await listImages(app.ports, tenantId) }),
  }),
  route({
    access: "tenant",
    method: "GET",
    path: "/v1/images/{imageId}",
    summary: "An image with its versions",
    responses: { 200: r.imageWithVersions },
    params: imageParams,
    handle: async ({ app, tenantId, params }) =>
      json(200, await getImage(app.ports, tenantId, params.imageId)),
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/images/{imageId}/versions",
    summary:
      "Publish a version from a qcow2 in the tenant's import folder or a blank disk; PUBLISHING until imported",
    responses: { 202: r.imageVersion },
    params: imageParams,
    body: s.publishVersionBody,
    handle: async ({ app, tenantId, params, body }) => {
      const version = await publishVersion(
        app.ports,
        tenantId,
        params.imageId,
        body.source,
        quotaDefaults(app),
      );
      return json(202, version, { location: `/v1/images/${params.imageId}` });
    },
  }),
  route({
    access: "tenant",
    method: "POST",
    path: "/v1/images/{imageId}/versions/{version}/retire",
    summary: "Retire a version: no new desktop is made from it",
    responses: { 200: r.imageVersion },
    params: versionParams,
    body: s.emptyBody,
    handle: async ({ app, tenantId, params }) =>
      json(200, await retireVersion(app.ports, tenantId, params.imageId, params.version)),
  }),
  route({
    access: "tenant",
    method: "DELETE",
    path: "/v1/images/{imageId}/versions/{version}",
    summary: "Delete a version no desktop uses",
    responses: { 204: "no-body" },
    params: versionParams,
    handle: async ({ app, tenantId, params }) => {
      await deleteVersion(app.ports, tenantId, params.imageId, params.version);
      return json(204, undefined);
    },
  }),
];
