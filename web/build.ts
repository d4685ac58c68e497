/**
 * Builds the web console (web/src) into static files with esbuild: `app-<hash>.js` and
 * `app-<hash>.css` (preact, uPlot and noVNC bundled in), their source maps, and `index.html`, which
 * names them. `npm run web:build` writes web/dist; `npm start` builds it when missing or stale; the
 * CDK api function copies a fresh build beside its handler (infra/constructs/lambda-function.ts).
 *
 *   node web/build.ts [--outdir DIR]
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { build } from "esbuild";

const webDir = fileURLToPath(new URL(".", import.meta.url));
const srcDir = join(webDir, "src");
export const defaultOutDir = join(webDir, "dist");
/** Written last: its time is when the build finished (a failed build leaves none, so the next start rebuilds). */
const stampFile = ".built";

/**
 * A clean build of the console into `outdir`. It is made beside it and swapped in by renames, so a
 * server reading `outdir` (another `npm start` building at the same time) never sees half a build.
 */
export async function buildConsole(outdir: string = defaultOutDir): Promise<{ files: string[] }> {
  const staging = `${outdir}.building-${process.pid}-${Date.now()}`;
  try {
    await buildInto(staging);
    const old = `${outdir}.old-${process.pid}-${Date.now()}`;
    await rename(outdir, old).catch(() => {});
    await rename(staging, outdir);
    await rm(old, { recursive: true, force: true });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return { files: (await readdir(outdir)).filter((f) => !f.startsWith(".")).sort() };
}

async function buildInto(outdir: string): Promise<void> {
  await mkdir(outdir, { recursive: true });
  const result = await build({
    absWorkingDir: webDir,
    entryPoints: { app: join(srcDir, "main.tsx") },
    outdir,
    entryNames: "[name]-[hash]",
    bundle: true,
    format: "esm",
    platform: "browser",
    // noVNC waits at top level (a WebCodecs probe): browsers with ES modules and top-level await.
    target: ["chrome111", "firefox115", "safari16.4", "edge111"],
    jsx: "automatic",
    jsxImportSource: "preact",
    tsconfig: join(webDir, "tsconfig.json"),
    minify: true,
    sourcemap: "linked",
    sourcesContent: false,
    legalComments: "linked",
    metafile: true,
    logLevel: "warning",
  });
  const outputs = Object.keys(result.metafile.outputs).map((f) => basename(f));
  const js = outputs.find((f) => /^app-\w+\.js$/.test(f));
  const css = outputs.find((f) => /^app-\w+\.css$/.test(f));
  if (!js || !css) throw new Error(`web build: no app bundle among ${outputs.join(", ")}`);
  const page = (await readFile(join(srcDir, "index.html"), "utf8"))
    .replace("{{js}}", `/console/${js}`)
    .replace("{{css}}", `/console/${css}`);
  await writeFile(join(outdir, "index.html"), page);
  await writeFile(join(outdir, stampFile), `${new Date().toISOString()}\n`);
}

async function newestChange(path: string): Promise<number> {
  const info = await stat(path);
  if (!info.isDirectory()) return info.mtimeMs;
  const times = await Promise.all((await readdir(path)).map((f) => newestChange(join(path, f))));
  return Math.max(info.mtimeMs, ...times);
}

/** True when `outdir` has no finished build, or one older than a source, this script or the lockfile. */
export async function consoleIsStale(outdir: string = defaultOutDir): Promise<boolean> {
  const built = await stat(join(outdir, stampFile)).catch(() => undefined);
  if (!built) return true;
  const inputs = [srcDir, fileURLToPath(import.meta.url), join(webDir, "..", "package-lock.json")];
  const newest = Math.max(...(await Promise.all(inputs.map((p) => newestChange(p).catch(() => 0)))));
  return newest > built.mtimeMs;
}

/** Builds the console unless an up-to-date build is there already (esbuild: well under a second). */
export async function ensureConsole(log: (line: string) => void, outdir: string = defaultOutDir) {
  if (!(await consoleIsStale(outdir))) return;
  const started = Date.now();
  await buildConsole(outdir);
  log(`built ${outdir} in ${Date.now() - started} ms`);
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { outdir: { type: "string" } } });
  const outdir = values.outdir ?? defaultOutDir;
  const started = Date.now();
  const { files } = await buildConsole(outdir);
  console.log(`web console: ${files.join(", ")} -> ${outdir} (${Date.now() - started} ms)`);
}
