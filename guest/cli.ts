/**
 * `npm run image:build [-- --force] [-- --publish]`: builds the desktop guest (cached under the
 * data dir) and, with --publish, publishes its disk as a version of a golden image of the tenant
 * whose key is PRISTINE_TENANT_KEY, on the API at PRISTINE_API (default http://127.0.0.1:8080).
 * The disk goes through the tenant's own import folder, as any tenant's disk does.
 */
import { copyFile, mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { buildGuestImage, type GuestImage } from "./build.ts";

const { values } = parseArgs({
  options: {
    force: { type: "boolean", default: false },
    publish: { type: "boolean", default: false },
    name: { type: "string", default: "pristine-desktop" },
  },
});
const log = (line: string) => console.log(`image:build: ${line}`);

/** The parts of the API's answers that publishing reads. */
interface Answer {
  detail?: string;
  tenantId?: string;
  imageId?: string;
  version?: number;
  versions?: { version: number; state: string; error?: string }[];
}

async function publish(image: GuestImage) {
  const api = process.env.PRISTINE_API ?? "http://127.0.0.1:8080";
  const key = process.env.PRISTINE_TENANT_KEY;
  if (!key) throw new Error("--publish needs the tenant's key in PRISTINE_TENANT_KEY");
  const call = async (method: string, path: string, body?: unknown): Promise<Answer> => {
    const res = await fetch(`${api}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { "content-type": "application/json" } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const answer = (await res.json().catch(() => ({}))) as Answer;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${answer.detail ?? ""}`);
    return answer;
  };
  const created = await call("POST", "/v1/images", { name: values.name });
  const folder = join(
    resolve(process.env.PRISTINE_DATA_DIR ?? "./.pristine"),
    "imports",
    String(created.tenantId),
  );
  await mkdir(folder, { recursive: true });
  await copyFile(image.disk, join(folder, `${values.name}.qcow2`));
  const version = await call("POST", `/v1/images/${created.imageId}/versions`, {
    source: { path: `${values.name}.qcow2` },
  });
  for (let i = 0; i < 600; i++) {
    const got = await call("GET", `/v1/images/${created.imageId}`);
    const v = got.versions?.find((x) => x.version === version.version);
    if (v?.state === "READY") return created.imageId as string;
    if (v?.state === "FAILED") throw new Error(`publishing failed: ${v.error}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error("publishing did not finish in 150 s");
}

try {
  const image = await buildGuestImage({ force: values.force ?? false, log });
  for (const [name, f] of Object.entries(image.manifest.files)) console.log(`  ${name}  sha256 ${f.sha256}`);
  if (values.publish) {
    const imageId = await publish(image);
    log(`published as image ${imageId} version 1 (READY)`);
    console.log(imageId);
  }
} catch (err) {
  console.error(`image:build failed: ${(err as Error).message}`);
  process.exitCode = 1;
}
