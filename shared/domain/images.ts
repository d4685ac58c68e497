import type { Ports } from "../ports.ts";
import { notFound } from "./errors.ts";
import { newId } from "./ids.ts";
import type { Image, ImageSource, ImageVersion } from "./model.ts";

export async function createImage(
  ports: Pick<Ports, "images" | "clock">,
  tenantId: string,
  input: { name: string },
): Promise<Image> {
  const image: Image = {
    tenantId,
    imageId: newId("img"),
    name: input.name,
    latestVersion: 0,
    createdAt: ports.clock.now().toISOString(),
  };
  await ports.images.createImage(image);
  return image;
}

export async function getImage(ports: Pick<Ports, "images">, tenantId: string, imageId: string) {
  const image = await ports.images.getImage(tenantId, imageId);
  if (!image) throw notFound("image", imageId);
  return { ...image, versions: await ports.images.listVersions(tenantId, imageId) };
}

/** Publishing is asynchronous: the version is PUBLISHING until the clone worker has imported it. */
export async function publishVersion(
  ports: Pick<Ports, "images" | "jobs" | "clock" | "storage">,
  tenantId: string,
  imageId: string,
  source: ImageSource,
): Promise<ImageVersion> {
  if (!(await ports.images.getImage(tenantId, imageId))) throw notFound("image", imageId);
  await ports.storage.validateSource(source);
  const createdAt = ports.clock.now().toISOString();
  const version = await ports.images.addVersion(tenantId, imageId, (n) => ({
    tenantId,
    imageId,
    version: n,
    state: "PUBLISHING",
    source,
    createdAt,
  }));
  await ports.jobs.send([{ kind: "import-image-version", tenantId, imageId, version: version.version }]);
  return version;
}
