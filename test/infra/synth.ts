import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { App, type CfnResource, type Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { definePristineApp, type PristineApp } from "../../infra/pristine-app.ts";
import type { PristineStack } from "../../infra/pristine-stack.ts";

// Synthesizes the real app (cdk.json context) once per scenario, with asset bundling skipped
// (esbuild is exercised by `npx cdk synth`), and checks the templates and the cdk-nag report.

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const CDK_CONTEXT = JSON.parse(readFileSync(path.join(ROOT, "cdk.json"), "utf8")).context as Record<
  string,
  unknown
>;

export type Json = Record<string, any>;

export interface Synthesized {
  readonly pristine: PristineApp;
  readonly templates: Map<PristineStack, Template>;
  readonly report: Json;
  readonly manifest: Json;
  readonly outdir: string;
}

const outdirs: string[] = [];

/** A new temporary folder for a cloud assembly, removed by removeSynthOutputs. */
export function tempOutdir(prefix = "pristine-cdk-test-"): string {
  const outdir = mkdtempSync(path.join(os.tmpdir(), prefix));
  outdirs.push(outdir);
  return outdir;
}

export function synthesize(extraContext: Record<string, unknown> = {}): Synthesized {
  const outdir = tempOutdir();
  const app = new App({
    outdir,
    context: {
      ...CDK_CONTEXT,
      ...extraContext,
      // Skip esbuild for every stack: the assets are not under test here.
      "aws:cdk:bundling-stacks": [],
      // Let synth finish and write validation-report.json; the tests read the report.
      "@aws-cdk/core:failSynthOnValidationErrors": false,
    },
  });
  const pristine = definePristineApp(app);
  const assembly = app.synth();
  const templates = new Map<PristineStack, Template>();
  for (const stack of [pristine.primary, pristine.dr]) {
    const file = assembly.getStackArtifact(stack.artifactId).templateFullPath;
    templates.set(stack, Template.fromJSON(JSON.parse(readFileSync(file, "utf8"))));
  }
  return {
    pristine,
    templates,
    report: JSON.parse(readFileSync(path.join(assembly.directory, "validation-report.json"), "utf8")),
    manifest: JSON.parse(readFileSync(path.join(assembly.directory, "manifest.json"), "utf8")),
    outdir,
  };
}

/** Removes the cloud assemblies written so far (call it in afterAll). */
export function removeSynthOutputs(): void {
  for (const dir of outdirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export const logicalId = (stack: Stack, construct: { node: { defaultChild?: unknown } }): string =>
  stack.getLogicalId(construct.node.defaultChild as CfnResource);

export const resourcesOf = (template: Template, type: string): Record<string, Json> =>
  template.findResources(type) as Record<string, Json>;

export const asArray = <T>(value: T | T[] | undefined): T[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

/** Every policy statement anywhere in a template (IAM, queue, bucket, topic, file system policies). */
export function allStatements(template: Template): Json[] {
  const found: Json[] = [];
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach(visit);
    } else if (node && typeof node === "object") {
      const obj = node as Json;
      if (Array.isArray(obj.Statement)) found.push(...obj.Statement);
      Object.values(obj).forEach(visit);
    }
  };
  visit(template.toJSON().Resources);
  return found;
}

/** Statements of the policies attached to one role (inline and AWS::IAM::Policy). */
export function roleStatements(template: Template, roleLogicalId: string): Json[] {
  const statements: Json[] = [];
  const role = resourcesOf(template, "AWS::IAM::Role")[roleLogicalId];
  for (const policy of asArray<Json>(role?.Properties?.Policies))
    statements.push(...policy.PolicyDocument.Statement);
  for (const policy of Object.values(resourcesOf(template, "AWS::IAM::Policy"))) {
    const roles = asArray<Json>(policy.Properties.Roles);
    if (roles.some((r) => r.Ref === roleLogicalId))
      statements.push(...policy.Properties.PolicyDocument.Statement);
  }
  return statements;
}

/** Violations of one plugin in a validation report (suppressed findings are not listed). */
export function violationsOf(report: Json, pluginName: string): Json[] {
  return (report.pluginReports as Json[])
    .filter((r) => r.pluginName === pluginName)
    .flatMap((r) => r.violations as Json[]);
}

/**
 * A function's Variables as the Lambda runtime would see them: CloudFormation values (Ref,
 * Fn::GetAtt, Fn::Join) replaced by plausible strings of the right shape.
 */
export function plausibleEnvironment(variables: Json): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(variables)) {
    if (typeof value === "string") env[key] = value;
    else if (key.endsWith("_QUEUE_URL")) env[key] = "https://sqs.eu-west-1.amazonaws.com/123456789012/x";
    else if (key.endsWith("_QUEUE_URLS")) env[key] = '{"host-a":"https://sqs.eu-west-1.amazonaws.com/1/x"}';
    else env[key] = `plausible-${key.toLowerCase()}`;
  }
  return env;
}
