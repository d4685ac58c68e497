/**
 * The api function's asset, bundled for real (esbuild, as `cdk synth` does): the web console's files
 * sit beside the handler, in `console/`, where the API serves them from in Lambda.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, Stack } from "aws-cdk-lib";
import { afterAll, expect, it } from "vitest";
import { PristineFunction } from "../../infra/constructs/lambda-function.ts";

const outdir = mkdtempSync(join(tmpdir(), "pristine-console-asset-"));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

it("bundles the web console into the api function's asset, beside its handler", () => {
  const app = new App({ outdir });
  const stack = new Stack(app, "ConsoleAsset");
  new PristineFunction(stack, "Api", { name: "api", stage: "test", environment: {} });
  const template = app.synth().getStackByName(stack.stackName).template as {
    Resources: Record<string, { Type: string; Properties: { Code?: { S3Key?: string } } }>;
  };
  const fn = Object.values(template.Resources).find((r) => r.Type === "AWS::Lambda::Function");
  const hash = fn?.Properties.Code?.S3Key?.replace(/\.zip$/, "");
  expect(hash).toMatch(/^[0-9a-f]{64}$/);
  const asset = join(outdir, `asset.${hash}`);
  expect(existsSync(join(asset, "index.mjs"))).toBe(true);
  const page = readFileSync(join(asset, "console", "index.html"), "utf8");
  const bundles = [...page.matchAll(/\/console\/(app-[A-Z0-9]+\.(?:js|css))/g)].map((m) => m[1] as string);
  expect(bundles).toHaveLength(2);
  for (const file of bundles) expect(existsSync(join(asset, "console", file))).toBe(true);
});
