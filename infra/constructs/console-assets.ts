import path from "node:path";
import type { ICommandHooks } from "aws-cdk-lib/aws-lambda-nodejs";

/**
 * The web console's static files (web/, see docs/console.md) are built into the api function's
 * asset, as `console/` beside the handler, where shared/http/static-assets.ts finds them in Lambda
 * (`$LAMBDA_TASK_ROOT/console`). They are built afresh by the Node that runs synth (Node 24, the
 * project's esbuild), so the deployed console always matches the source; bundling runs locally
 * (esbuild is a dev dependency), so the paths are this machine's.
 */
export const consoleBundlingHooks: ICommandHooks = {
  beforeBundling: () => [],
  beforeInstall: () => [],
  afterBundling: (inputDir: string, outputDir: string) => [
    [process.execPath, path.join(inputDir, "web", "build.ts"), "--outdir", path.join(outputDir, "console")]
      .map((arg) => `'${arg.replaceAll("'", "'\\''")}'`)
      .join(" "),
  ],
};
