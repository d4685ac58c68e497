/**
 * The web console in a real headless Chromium (Debian's chromium, driven by playwright-core) against
 * `npm start` with desktops as disks only: sign in, pools by state, a logon from the API changing the
 * bar (the console's numbers are the API's), the storage chart, a drill started from the DR region's
 * console and its report, the metrics with the API's totals, the operator's datastores. Screenshots of each
 * step go to test-output/console/.
 */
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../../local/emulators.ts";
import { call, consoleStack, noChromium, tenantWithImage } from "./console-stack.ts";

const stack = await consoleStack();
const { api, dr, port } = stack;
let operatorKey = "";
let tenantKey = "";
let poolId = "";
const page = () => stack.page;

/** A GET with the path sent as written (fetch would resolve `..` itself). */
function rawGet(path: string): Promise<{ status: number; type: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method: "GET" }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: res.headers["content-type"] }));
    });
    req.on("error", reject);
    req.end();
  });
}

const shot = (name: string) => stack.shot(name);

/** The console's counts for a pool, read from its stacked bar's legend. */
async function consoleCounts(poolId: string): Promise<Record<string, number>> {
  const items = page().locator(`[data-testid="state-bar"][data-pool="${poolId}"] li[data-state]`);
  const pairs = await items.evaluateAll((els) =>
    els.map((el) => [el.getAttribute("data-state") ?? "", Number(el.getAttribute("data-count"))] as const),
  );
  return Object.fromEntries(pairs);
}

// Without chromium the test is skipped on a developer's machine, never in CI (.ci/run installs it).
describe.skipIf(noChromium)("the web console", () => {
  beforeAll(async () => {
    await stack.start();
    operatorKey = stack.operatorKey;
  }, 180_000);

  afterAll(() => stack.stop(), 60_000);

  it("is served by the API with its content types, and nothing outside its folder", async () => {
    const index = await fetch(`${api}/console/`);
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(index.headers.get("cache-control")).toBe("no-cache");
    const html = await index.text();
    const js = /src="\/console\/(app-\w+\.js)"/.exec(html)?.[1];
    const css = /href="\/console\/(app-\w+\.css)"/.exec(html)?.[1];
    const bundle = await fetch(`${api}/console/${js}`);
    expect(bundle.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(bundle.headers.get("cache-control")).toContain("immutable");
    expect((await fetch(`${api}/console/${css}`)).headers.get("content-type")).toBe(
      "text/css; charset=utf-8",
    );
    expect((await fetch(`${api}/console`)).status).toBe(200);
    for (const path of [
      "/console/..",
      "/console/../package.json",
      "/console/%2e%2e",
      "/console/..%2fpackage.json",
      "/console/.built",
      "/console/nope.js",
    ])
      expect((await rawGet(path)).status, path).toBe(404);
  });

  it("sets up a tenant with a pool of 3 (through the API)", async () => {
    const made = await tenantWithImage(stack, "console");
    tenantKey = made.tenantKey;
    const { imageId } = made;
    const pool = await call<{ poolId: string }>(api, tenantKey, "POST", "/v1/pools", {
      name: "call-center",
      imageId,
      size: 3,
    });
    expect(pool.status).toBe(201);
    poolId = pool.body.poolId;
  });

  it("shows the API's problem for a wrong key, and signs in with the tenant's", async () => {
    await page().goto(`${api}/console/`);
    await page().locator('input[name="apiKey"]').fill("prs_not-a-key");
    await page().getByRole("button", { name: "Sign in" }).click();
    await page().getByTestId("problem").waitFor();
    expect(await page().getByTestId("problem").textContent()).toContain("Unauthorized");
    await shot("wrong-key");
    await page().locator('input[name="apiKey"]').fill(tenantKey);
    await page().getByRole("button", { name: "Sign in" }).click();
    await page().getByTestId("role").waitFor();
    expect(await page().getByTestId("role").textContent()).toBe("tenant");
    expect(await page().evaluate(() => sessionStorage.getItem("pristine.apiKey"))).toBe(tenantKey);
    expect(await page().evaluate(() => localStorage.length)).toBe(0);
  });

  it("shows the pool's desktops by state, then a logon from the API on its bar, as the API counts them", async () => {
    await page()
      .locator(`[data-testid="state-bar"][data-pool="${poolId}"] li[data-state="AVAILABLE"][data-count="3"]`)
      .waitFor({ timeout: 60_000 });
    await page().locator(`tr[data-pool-row="${poolId}"] button.link`).click();
    await page().locator(`[data-testid="pool-desktops"] tr[data-desktop]`).nth(2).waitFor();
    await shot("pool-available");

    const logon = await call<{ sessionId: string; desktopId: string }>(
      api,
      tenantKey,
      "POST",
      `/v1/pools/${poolId}/logons`,
      { userId: "alice" },
    );
    expect(logon.status).toBe(200);
    await page()
      .locator(`[data-testid="state-bar"][data-pool="${poolId}"] li[data-state="ASSIGNED"][data-count="1"]`)
      .waitFor();
    // The console's numbers are the API's (read until both agree, with a deadline: both poll).
    let seen: { console: Record<string, number>; api: Record<string, number> } | undefined;
    await waitFor(
      "the console's counts to equal the API's",
      async () => {
        const fromApi = (
          await call<{ desktopCounts: Record<string, number> }>(api, tenantKey, "GET", `/v1/pools/${poolId}`)
        ).body.desktopCounts;
        const fromConsole = await consoleCounts(poolId);
        seen = { console: fromConsole, api: fromApi };
        return JSON.stringify(fromConsole) === JSON.stringify(fromApi);
      },
      15_000,
      250,
    );
    expect(seen?.console).toEqual(seen?.api);
    expect(seen?.console.ASSIGNED).toBe(1);
    expect(seen?.console.AVAILABLE).toBe(2);
    await page().locator(`tr[data-desktop="${logon.body.desktopId}"]`, { hasText: "alice" }).waitFor();
    await shot("pool-after-api-logon");
  });

  it("logs a user on from the console and lists the sessions", async () => {
    await page().getByTestId("logon-form").locator("input").fill("bob");
    await page().getByTestId("logon-form").getByRole("button", { name: "Log on" }).click();
    await page()
      .getByText(/bob logged on to dsk-/)
      .waitFor();
    await page()
      .locator(`[data-testid="state-bar"][data-pool="${poolId}"] li[data-state="ASSIGNED"][data-count="2"]`)
      .waitFor();
    await shot("pool-after-console-logon");
    await page().locator('nav button[data-tab="Sessions"]').click();
    await page().locator("[data-session]").nth(1).waitFor();
    expect(await page().locator("[data-session]").count()).toBe(2);
    await shot("sessions");
  });

  it("charts storage used against a full-clone equivalent", async () => {
    await page().locator('nav button[data-tab="Storage"]').click();
    await page().locator('[data-testid="storage-chart"] canvas').waitFor();
    expect(await page().getByTestId("storage-panel").textContent()).toContain("call-center");
    await shot("storage");
  });

  it("shows replication here, and runs a drill from the DR region's console and opens its report", async () => {
    await page().locator('nav button[data-tab="DR"]').click();
    await page().locator('[data-testid="replication-chart"] canvas').waitFor();
    await page()
      .getByText(/drills run in the DR region/)
      .waitFor();
    // The readiness panel says what the API says: no check has run yet in this young stack.
    const readiness = await call<{ overdue: boolean; report?: unknown }>(
      api,
      tenantKey,
      "GET",
      "/v1/dr/readiness",
    );
    const panel = page().getByTestId("readiness-panel");
    await panel.getByText("current RPO").waitFor();
    if (!readiness.body.report) expect(await panel.textContent()).toContain("never");
    await shot("dr-primary");

    // Alice logs off: her data's new version reaches DR, so the drill has a user to verify.
    const alice = (
      await call<{ items: { userId?: string; sessionId?: string }[] }>(
        api,
        tenantKey,
        "GET",
        `/v1/pools/${poolId}/desktops`,
      )
    ).body.items.find((d) => d.userId === "alice");
    expect((await call(api, tenantKey, "POST", `/v1/sessions/${alice?.sessionId}/logoff`, {})).status).toBe(
      200,
    );
    await waitFor(
      "alice's data replicated",
      async () => {
        const r = await call<{ users: { userId: string; replicatedVersion: number }[] }>(
          api,
          tenantKey,
          "GET",
          "/v1/dr/replication",
        );
        return r.body.users.some((u) => u.userId === "alice" && u.replicatedVersion >= 1);
      },
      60_000,
      250,
    );
    await waitFor("the pool replicated to DR", async () => {
      const r = await call<{ dr: { standbyPools: string[] } }>(dr, tenantKey, "GET", "/v1/dr/replication");
      return r.status === 200 && r.body.dr.standbyPools.includes(poolId);
    });
    await page().goto(`${dr}/console/`);
    await page().locator('input[name="apiKey"]').fill(tenantKey);
    await page().getByRole("button", { name: "Sign in" }).click();
    await page().locator('nav button[data-tab="DR"]').click();
    const form = page().getByTestId("start-drill");
    await form.locator("label", { hasText: poolId }).locator("input").check();
    await form.getByRole("button", { name: "Start drill" }).click();
    const row = page().locator("tr[data-drill]");
    await row.waitFor();
    const drillId = (await row.getAttribute("data-drill")) ?? "";
    expect(drillId).toMatch(/^drl-/);
    expect(
      JSON.parse((await page().evaluate(() => sessionStorage.getItem("pristine.drills"))) ?? "[]"),
    ).toEqual([drillId]);
    await page().locator(`tr[data-drill="${drillId}"][data-state="SUCCEEDED"]`).waitFor({ timeout: 90_000 });
    await page().locator(`[data-testid="drill-report"][data-drill="${drillId}"]`).waitFor();
    const report = await call<{ state: string; phase: string }>(
      dr,
      tenantKey,
      "GET",
      `/v1/dr/drills/${drillId}`,
    );
    expect(report.body).toMatchObject({ state: "SUCCEEDED", phase: "DONE", usersVerified: 1 });
    expect(await page().getByTestId("drill-report").textContent()).toContain("DONE");
    await page().locator('[data-testid="drills-chart"] canvas').waitFor();
    await shot("drill-report");

    // There is no list route: a forgotten drill is opened again by its id.
    await page().getByRole("button", { name: "Forget" }).click();
    await page().getByTestId("open-drill").locator("input").fill(drillId);
    await page().getByTestId("open-drill").getByRole("button", { name: "Open" }).click();
    await page().locator(`tr[data-drill="${drillId}"]`).waitFor();
  });

  it("shows the metrics as series, with the same totals as the API", async () => {
    // Back on the primary's console (still signed in there), where the logons were.
    await page().goto(`${api}/console/`);
    await page().locator('nav button[data-tab="Metrics"]').click();
    const apiTotals = async () => {
      const res = await fetch(`${api}/v1/metrics?minutes=30`, {
        headers: { authorization: `Bearer ${tenantKey}` },
      });
      const body = (await res.json()) as { series: { name: string; points: { count: number }[] }[] };
      return Object.fromEntries(body.series.map((s) => [s.name, s.points.reduce((n, p) => n + p.count, 0)]));
    };
    const shown = (name: string) => page().locator(`[data-metric="${name}"]`).getAttribute("data-count");
    // The logons of the tests before (one from the API, one from the console) and the pool's 3 desktops.
    await waitFor(
      "the console's totals equal the API's",
      async () => {
        const totals = await apiTotals();
        return (
          (totals.logonsServed ?? 0) >= 2 &&
          (totals.provisionSeconds ?? 0) >= 3 &&
          (await shown("logonsServed")) === String(totals.logonsServed) &&
          (await shown("provisionSeconds")) === String(totals.provisionSeconds)
        );
      },
      30_000,
      // The panel polls every 10 s: switching tabs reloads it sooner.
      250,
    );
    await page().locator("[data-metric] canvas").nth(3).waitFor();
    expect(
      (
        await page()
          .locator("[data-metric]")
          .evaluateAll((els) => els.map((e) => e.getAttribute("data-metric")))
      ).slice(0, 3),
    ).toEqual(["logonsServed", "logonsRefused", "logonLatencyMs"]);
    await shot("metrics");
  });

  it("shows the operator the datastores with used against capacity", async () => {
    await page().goto(`${api}/console/`);
    await page().getByRole("button", { name: "Sign out" }).click();
    await page().locator('input[name="apiKey"]').fill(operatorKey);
    await page().getByRole("button", { name: "Sign in" }).click();
    expect(await page().getByTestId("role").textContent()).toBe("operator");
    await page().locator("[data-datastore]").first().waitFor();
    expect(await page().getByTestId("datastores-panel").textContent()).toContain("ds-default");
    await shot("operator-datastores");
    expect(stack.pageErrors).toEqual([]);
  });
});
