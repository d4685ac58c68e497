/**
 * The web console's static files (web/dist, built by `npm run web:build`), served by the API itself.
 * Only a file that is in the folder's own listing is ever read: a name is matched, never joined as a
 * path, so `..`, `a/b` or an encoded slash answer 404 like any unknown name.
 */
import { readdir, readFile } from "node:fs/promises";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { HttpProblem, problem } from "./problem.ts";
import type { Reply } from "./router.ts";

const contentTypes: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".txt": "text/plain; charset=utf-8",
};

/** The page may load only its own files, draw blob: screenshots, call this API and open VNC WebSockets. */
const contentSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self'",
  // uPlot and noVNC set element styles.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' blob: data:",
  "connect-src 'self' ws: wss:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

/** esbuild names bundles `<name>-<hash>.<ext>`: such a file never changes, so it is cached for good. */
const hashed = /-[A-Z0-9]{8}\.(js|css|map)$/;

/** Where the console's files are: beside the bundled handler in Lambda (see infra), web/dist here. */
export function consoleAssetDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.LAMBDA_TASK_ROOT
    ? join(env.LAMBDA_TASK_ROOT, "console")
    : fileURLToPath(new URL("../../web/dist/", import.meta.url));
}

/** One file of `dir` by its plain name, with its content type and caching headers; 404 otherwise. */
export async function serveAsset(dir: string, name: string): Promise<Reply> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => undefined);
  if (!entries) throw new HttpProblem(problem("notFound", "the console is not built (npm run web:build)"));
  const type = contentTypes[extname(name)];
  const entry = entries.find((e) => e.isFile() && e.name === name);
  if (!entry || !type || name.startsWith(".")) {
    throw new HttpProblem(problem("notFound", "no such console file"));
  }
  const body = await readFile(join(dir, entry.name));
  const html = type.startsWith("text/html");
  return {
    status: 200,
    body,
    headers: {
      "content-type": type,
      // The page is looked at again each time (it names the current bundles); bundles are immutable.
      "cache-control": html
        ? "no-cache"
        : hashed.test(name)
          ? "public, max-age=31536000, immutable"
          : "public, max-age=300",
      "x-content-type-options": "nosniff",
      ...(html ? { "content-security-policy": contentSecurityPolicy, "referrer-policy": "no-referrer" } : {}),
    },
  };
}
