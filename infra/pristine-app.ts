import { type App, Tags, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { type PristineConfig, readConfig } from "./config.ts";
import { stackName } from "./names.ts";
import { PristineStack } from "./pristine-stack.ts";

export interface PristineApp {
  readonly config: PristineConfig;
  readonly primary: PristineStack;
  readonly dr: PristineStack;
}

/**
 * Adds the two regional stacks of one stage to `app` (configured by its context) and registers
 * the cdk-nag AWS Solutions checks. cdk-nag 3 is a CDK policy-validation plugin (it replaced
 * the v2 Aspect): an unacknowledged finding fails `cdk synth`.
 */
export function definePristineApp(app: App): PristineApp {
  const config = readConfig(app.node);

  const primary = new PristineStack(app, stackName(config.stage, config.primaryRegion), {
    config,
    role: "primary",
    region: config.primaryRegion,
    peerRegion: config.drRegion,
  });
  const dr = new PristineStack(app, stackName(config.stage, config.drRegion), {
    config,
    role: "dr",
    region: config.drRegion,
    peerRegion: config.primaryRegion,
  });

  for (const stack of [primary, dr]) {
    Tags.of(stack).add("project", "pristine");
    Tags.of(stack).add("pristine:stage", config.stage);
    Tags.of(stack).add("pristine:region-role", stack.role);
  }

  // writeSuppressionsToCloudFormation: every acknowledged finding and its reason is also written
  // to the resource's Metadata (cdk_nag.rules_to_suppress) in the template, as an audit trail.
  Validations.of(app).addPlugins(
    new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }),
  );
  return { config, primary, dr };
}
