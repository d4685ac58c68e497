/**
 * What the console's browser tests share: `npm start` (both regions, desktops as disks only) on free
 * ports with a temporary data dir, Debian's chromium with a fresh profile, the API called as a
 * client would, a tenant with a blank image, and screenshots into test-output/console/.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { freePort, waitFor } from "../../local/emulators.ts";
import { chromiumPath, launchChromium, startPristine } from "../support/pristine-process.ts";

/** Without chromium the tests are skipped on a developer's machine, never in CI (.ci/run installs it). */
export const noChromium = !existsSync(chromiumPath) && !process.env.CI;

export async function call<T>(
  base: string,
  key: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

export interface ConsoleStack {
  port: number;
  /** The primary region's API, and the DR region's. */
  api: string;
  dr: string;
  operatorKey: string;
  page: Page;
  /** Uncaught errors of the page. */
  pageErrors: string[];
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A full-page screenshot: test-output/console/<prefix><step>-<name>.png. */
  shot(name: string): Promise<void>;
}

export async function consoleStack(prefix = ""): Promise<ConsoleStack> {
  const shots = join(process.cwd(), "test-output", "console");
  const dataDir = await mkdtemp(join(tmpdir(), "pristine-console-"));
  const profileDir = await mkdtemp(join(tmpdir(), "pristine-chromium-"));
  const port = await freePort();
  const drPort = await freePort();
  const children: ChildProcess[] = [];
  let browser: BrowserContext | undefined;
  let step = 0;
  const stack: ConsoleStack = {
    port,
    api: `http://127.0.0.1:${port}`,
    dr: `http://127.0.0.1:${drPort}`,
    operatorKey: "",
    page: undefined as unknown as Page,
    pageErrors: [],
    async start() {
      await mkdir(shots, { recursive: true });
      const started = await startPristine({
        PRISTINE_PORT: String(port),
        PRISTINE_DR_PORT: String(drPort),
        PRISTINE_DATA_DIR: dataDir,
        PRISTINE_HYPERVISOR: "none",
      });
      children.push(started.child);
      stack.operatorKey = (await readFile(join(dataDir, "operator-key"), "utf8")).trim();
      browser = await launchChromium(profileDir);
      stack.page = browser.pages()[0] ?? (await browser.newPage());
      stack.page.on("pageerror", (err) => stack.pageErrors.push(err.message));
    },
    async stop() {
      await browser?.close().catch(() => {});
      for (const c of children) {
        c.kill("SIGINT");
        await new Promise((r) => {
          const t = setTimeout(() => {
            c.kill("SIGKILL");
            r(undefined);
          }, 15_000);
          c.once("exit", () => {
            clearTimeout(t);
            r(undefined);
          });
        });
      }
      await rm(dataDir, { recursive: true, force: true });
      await rm(profileDir, { recursive: true, force: true });
    },
    async shot(name: string) {
      step += 1;
      await stack.page.screenshot({
        path: join(shots, `${prefix}${String(step).padStart(2, "0")}-${name}.png`),
        fullPage: true,
      });
    },
  };
  return stack;
}

/** A tenant (named `name`) and an image with one READY blank version, made through the API. */
export async function tenantWithImage(
  stack: ConsoleStack,
  name: string,
): Promise<{ tenantKey: string; imageId: string }> {
  const { api } = stack;
  const tenant = await call<{ apiKey: string }>(api, stack.operatorKey, "POST", "/v1/admin/tenants", {
    name,
  });
  if (tenant.status !== 201) throw new Error(`tenant: ${tenant.status}`);
  const tenantKey = tenant.body.apiKey;
  const image = await call<{ imageId: string }>(api, tenantKey, "POST", "/v1/images", { name: "blank" });
  const { imageId } = image.body;
  const version = await call(api, tenantKey, "POST", `/v1/images/${imageId}/versions`, {
    source: { blankSizeMiB: 64 },
  });
  if (version.status !== 202) throw new Error(`image version: ${version.status}`);
  await waitFor("the version READY", async () => {
    const img = await call<{ versions: { state: string }[] }>(api, tenantKey, "GET", `/v1/images/${imageId}`);
    return img.body.versions[0]?.state === "READY";
  });
  return { tenantKey, imageId };
}

/** Signs in to the console of `base` with a key. */
export async function signIn(page: Page, base: string, key: string): Promise<void> {
  await page.goto(`${base}/console/`);
  await page.locator('input[name="apiKey"]').fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("role").waitFor();
}
