import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpProblem } from "../../shared/http/problem.ts";
import { consoleAssetDir, serveAsset } from "../../shared/http/static-assets.ts";

let root: string;
let dir: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "pristine-assets-"));
  dir = join(root, "dist");
  await mkdir(join(dir, "sub"), { recursive: true });
  await writeFile(join(dir, "index.html"), "<!doctype html>");
  await writeFile(join(dir, "app-ABCD1234.js"), "export {}");
  await writeFile(join(dir, "app-ABCD1234.css"), "body{}");
  await writeFile(join(dir, ".built"), "stamp");
  await writeFile(join(dir, "notes.unknown"), "?");
  await writeFile(join(dir, "sub", "inner.js"), "x");
  await writeFile(join(root, "secret.js"), "secret");
});
afterAll(() => rm(root, { recursive: true, force: true }));

const status = async (name: string) =>
  serveAsset(dir, name).then(
    (r) => r.status,
    (err: unknown) => (err instanceof HttpProblem ? err.problem.status : 500),
  );

describe("the console's static files", () => {
  it("serves the page with its type, no-cache and a content security policy", async () => {
    const reply = await serveAsset(dir, "index.html");
    expect(reply.status).toBe(200);
    expect(Buffer.isBuffer(reply.body)).toBe(true);
    expect(reply.headers).toMatchObject({
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
    });
    expect(reply.headers?.["content-security-policy"]).toContain("default-src 'self'");
  });

  it("caches hashed bundles for good", async () => {
    const js = await serveAsset(dir, "app-ABCD1234.js");
    expect(js.headers).toMatchObject({
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": "public, max-age=31536000, immutable",
    });
    expect((js.body as Buffer).toString()).toBe("export {}");
    expect((await serveAsset(dir, "app-ABCD1234.css")).headers?.["content-type"]).toBe(
      "text/css; charset=utf-8",
    );
  });

  it("answers 404 for anything not a plain file of the folder, never reading outside it", async () => {
    for (const name of [
      "..",
      ".",
      "../secret.js",
      "..%2Fsecret.js",
      "sub/inner.js",
      "sub",
      ".built",
      "notes.unknown",
      "missing.js",
      "",
      "index.html\u0000.js",
      "/etc/passwd",
    ])
      expect(await status(name), name).toBe(404);
  });

  it("answers 404 when the console is not built", async () => {
    expect(
      await serveAsset(join(root, "nowhere"), "index.html").catch((e: HttpProblem) => e.problem.detail),
    ).toMatch(/not built/);
  });

  it("finds the files beside the bundled handler in Lambda, in web/dist otherwise", () => {
    expect(consoleAssetDir({ LAMBDA_TASK_ROOT: "/var/task" })).toBe("/var/task/console");
    expect(consoleAssetDir({})).toMatch(/\/web\/dist\/?$/);
  });
});
