/**
 * The console's views of what the API gained with self-sizing pools and forks, in a real headless
 * Chromium against `npm start` (desktops as disks only): a self-sizing pool's settings, STOPPED in
 * its legend, a queued logon's ticket (202) followed until served, then the forks a failover keeps
 * (a session still open in the primary when the DR region takes over) resolved from the console:
 * refused (409) while the primary is fenced, accepted (202) and done after failback. Screenshots
 * go to test-output/console/ (named queue-*).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../../local/emulators.ts";
import { call, consoleStack, noChromium, signIn, tenantWithImage } from "./console-stack.ts";

const stack = await consoleStack("queue-");
const { api, dr } = stack;
let tenantKey = "";
let imageId = "";
let sizedId = "";
const page = () => stack.page;
const shot = (name: string) => stack.shot(name);

describe.skipIf(noChromium)("the web console: self-sizing pools, tickets, forks", () => {
  beforeAll(async () => {
    await stack.start();
    ({ tenantKey, imageId } = await tenantWithImage(stack, "queue"));
    await signIn(page(), api, tenantKey);
  }, 180_000);

  afterAll(() => stack.stop(), 60_000);

  it("shows a self-sizing pool's settings, and follows a queued logon's ticket until it is served", async () => {
    // One desktop to start with (minSize 1, no spare): once dora has it, the next logon waits in line.
    const sized = await call<{ poolId: string }>(api, tenantKey, "POST", "/v1/pools", {
      name: "self-sizing",
      imageId,
      minSize: 1,
      maxSize: 3,
      spare: 0,
      idleSeconds: 900,
      ticketTimeoutSeconds: 120,
    });
    expect(sized.status).toBe(201);
    sizedId = sized.body.poolId;
    await waitFor("the self-sizing pool's first desktop", async () => {
      const p = await call<{ desktopCounts: Record<string, number> }>(
        api,
        tenantKey,
        "GET",
        `/v1/pools/${sizedId}`,
      );
      return p.body.desktopCounts.AVAILABLE === 1;
    });
    expect(
      (await call(api, tenantKey, "POST", `/v1/pools/${sizedId}/logons`, { userId: "dora" })).status,
    ).toBe(200);

    await page().locator('nav button[data-tab="Pools"]').click();
    await page().locator(`tr[data-pool-row="${sizedId}"] button.link`).click();
    const sizing = page().locator(
      `[data-testid="pool-desktops"][data-pool="${sizedId}"] [data-testid="sizing"]`,
    );
    await sizing.locator('[data-setting="maxSize"][data-value="3"]').waitFor();
    const settings = await sizing
      .locator("[data-setting]")
      .evaluateAll((els) => els.map((e) => [e.getAttribute("data-setting"), e.getAttribute("data-value")]));
    expect(Object.fromEntries(settings)).toMatchObject({
      minSize: "1",
      maxSize: "3",
      spare: "0",
      poweredOnSpare: "all",
      idleSeconds: "15.0 min",
      ticketTimeoutSeconds: "2.0 min",
    });
    expect(await page().locator(`tr[data-pool-row="${sizedId}"]`).textContent()).toContain("self-sizing 1–3");
    // STOPPED has its place in the legend (none here: without VMs nothing is powered off).
    const stopped = page().locator(
      `[data-testid="state-bar"][data-pool="${sizedId}"] li[data-state="STOPPED"][data-count="0"]`,
    );
    expect(await stopped.textContent()).toContain("stopped (powered off)");

    // erin finds no free desktop: a 202 with a ticket, shown with its place, then served.
    await page().getByTestId("logon-form").locator("input").fill("erin");
    await page().getByTestId("logon-form").getByRole("button", { name: "Log on" }).click();
    const ticket = page().getByTestId("ticket");
    await ticket.waitFor();
    const ticketId = (await ticket.getAttribute("data-ticket")) ?? "";
    expect(ticketId).toMatch(/^tkt-/);
    const fromApi = await call<{ userId: string; state: string; sessionId?: string }>(
      api,
      tenantKey,
      "GET",
      `/v1/pools/${sizedId}/logons/${ticketId}`,
    );
    expect(fromApi.status).toBe(200);
    expect(fromApi.body.userId).toBe("erin");
    // Its first state is the 202's own (WAITING, next in line), kept in the ticket's steps.
    await ticket.locator("li", { hasText: "WAITING (position 0)" }).waitFor();
    await shot("ticket-queued");
    await page().locator('[data-testid="ticket"][data-state="SERVED"]').waitFor({ timeout: 60_000 });
    await ticket.getByText(/erin logged on to dsk-/).waitFor();
    const served = await call<{ state: string; sessionId?: string }>(
      api,
      tenantKey,
      "GET",
      `/v1/pools/${sizedId}/logons/${ticketId}`,
    );
    expect(served.body.state).toBe("SERVED");
    const erin = (
      await call<{ items: { userId?: string; sessionId?: string; desktopId: string }[] }>(
        api,
        tenantKey,
        "GET",
        `/v1/pools/${sizedId}/desktops`,
      )
    ).body.items.find((d) => d.userId === "erin");
    expect(erin?.sessionId).toBe(served.body.sessionId);
    expect(await ticket.textContent()).toContain(erin?.desktopId);
    await page()
      .locator(`[data-testid="state-bar"][data-pool="${sizedId}"] li[data-state="ASSIGNED"][data-count="2"]`)
      .waitFor();
    await shot("ticket-served");
  });

  it("lists the forks a failover made, and resolves one from the console with the API's answers", async () => {
    // dora is still logged on in the primary with her data attached; the pool is a standby in DR.
    // The DR region's failover fences the primary, which ends her session there: her data is kept
    // as a fork, not as a version.
    const dora = (
      await call<{ items: { userId?: string; sessionId?: string }[] }>(
        api,
        tenantKey,
        "GET",
        `/v1/pools/${sizedId}/desktops`,
      )
    ).body.items.find((d) => d.userId === "dora");
    await waitFor("dora's data attached", async () => {
      const s = await call<{ userData: { state: string } }>(
        api,
        tenantKey,
        "GET",
        `/v1/sessions/${dora?.sessionId}`,
      );
      return s.body.userData.state === "ATTACHED";
    });
    await waitFor(
      "the pool replicated to DR",
      async () => {
        const r = await call<{ dr: { standbyPools: string[] } }>(dr, tenantKey, "GET", "/v1/dr/replication");
        return r.status === 200 && r.body.dr.standbyPools.includes(sizedId);
      },
      60_000,
      250,
    );
    expect((await call(dr, tenantKey, "POST", "/v1/dr/failover", {})).status).toBe(202);
    const forksHere = async () =>
      (
        await call<{ forks: { forkId: string; userId: string; state: string; keep?: string }[] }>(
          api,
          tenantKey,
          "GET",
          "/v1/dr/replication",
        )
      ).body.forks;
    await waitFor(
      "dora's fork in the primary",
      async () => (await forksHere()).some((f) => f.userId === "dora"),
      60_000,
      250,
    );
    const doraFork = (await forksHere()).find((f) => f.userId === "dora");
    await page().goto(`${api}/console/`);
    await page().locator('nav button[data-tab="DR"]').click();
    const row = page().locator(`[data-testid="forks-panel"] tr[data-fork="${doraFork?.forkId}"]`);
    await page()
      .locator(`[data-testid="forks-panel"] tr[data-fork="${doraFork?.forkId}"][data-state="OPEN"]`)
      .waitFor();
    expect(await row.textContent()).toContain("a session ended here after the failover");
    expect(await row.textContent()).toContain(dora?.sessionId);

    // While the primary is fenced a fork is resolved in the region that serves the tenant: 409.
    await row.getByRole("button", { name: "Keep fork" }).click();
    await row.locator('[data-testid="fork-outcome"][data-status="409"]').waitFor();
    expect(await row.getByTestId("fork-outcome").textContent()).toMatch(/resolve it there/);
    await shot("forks-refused-while-fenced");

    // Failback: the primary serves again, and the resolution is accepted (202) and done.
    expect((await call(dr, tenantKey, "POST", "/v1/dr/failback", {})).status).toBe(202);
    await waitFor(
      "the primary serves again",
      async () => {
        const r = await call<{ dr: { fenced?: boolean } }>(api, tenantKey, "GET", "/v1/dr/replication");
        return r.body.dr.fenced === false;
      },
      90_000,
      250,
    );
    await row.getByRole("button", { name: "Keep current" }).click();
    await row.locator('[data-testid="fork-outcome"][data-status="202"]').waitFor();
    await page()
      .locator(`[data-testid="forks-panel"] tr[data-fork="${doraFork?.forkId}"][data-state="RESOLVED"]`)
      .waitFor({ timeout: 30_000 });
    expect(await row.textContent()).toContain("resolved: keep the current version");
    expect((await forksHere()).find((f) => f.forkId === doraFork?.forkId)).toMatchObject({
      state: "RESOLVED",
      keep: "current",
    });
    // erin's fork kept instead: its content becomes her next version (v1: she had none before).
    const erinFork = (await forksHere()).find((f) => f.userId === "erin");
    const erinRow = page().locator(`[data-testid="forks-panel"] tr[data-fork="${erinFork?.forkId}"]`);
    await erinRow.getByRole("button", { name: "Keep fork" }).click();
    await page()
      .locator(`[data-testid="forks-panel"] tr[data-fork="${erinFork?.forkId}"][data-state="RESOLVED"]`)
      .waitFor({ timeout: 30_000 });
    expect(await erinRow.textContent()).toContain("resolved: keep the fork (now v1)");
    await shot("forks-resolved");
    expect(stack.pageErrors).toEqual([]);
  });
});
