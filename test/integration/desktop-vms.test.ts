/**
 * Desktops that run (real qemu-system-x86_64, TCG here): a pool of the guest built by
 * `npm run image:build` boots one VM per desktop from its linked clone; a logon gets a VNC
 * endpoint with a one-time password; the screen shows the user; logoff typed inside the desktop
 * comes back through the event path; dead VMs and a stopped host are repaired. Few, small VMs:
 * three of 128 MiB for the pool (plus their restarts).
 */
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reconcile } from "../../shared/domain/reconcile.ts";
import { setCheckpointHook } from "../../shared/faults.ts";
import { ensureConsole } from "../../web/build.ts";
import { testGuest } from "../support/guest.ts";
import { chromiumPath, launchChromium } from "../support/pristine-process.ts";
import { vncLogin } from "../support/rfb.ts";
import { tableSnapshot } from "../support/table-snapshot.ts";
import { ConsoleSession, decodePng, differingPixels } from "../support/vm.ts";
import {
  expectStatus,
  importPath,
  newTenant,
  readyImage,
  startTestRegion,
  type TestRegion,
  waitFor,
  waitForCounts,
  waitUntilDrained,
} from "./harness.ts";

const bootMs = 120_000;
const bannerRegion = { x: 0, y: 3 * 16, width: 720, height: 7 * 16 };

let r: TestRegion;
let tenant: { tenantId: string; key: string };
let imageId: string;
let poolId: string;
const seenStates = new Set<string>();

const api = (method: string, path: string, body?: unknown) =>
  r.api(method, path, { key: tenant.key, ...(body !== undefined ? { body } : {}) });
const desktops = async () =>
  expectStatus(await api("GET", `/v1/pools/${poolId}/desktops`), 200).items as any[];
const hypervisor = () => {
  const host = r.region.host;
  if (!host) throw new Error("the region runs no host");
  return host.runtime.hypervisor;
};

async function logon(userId: string, pool = poolId) {
  const s = expectStatus(await api("POST", `/v1/pools/${pool}/logons`, { userId }), 200);
  await waitFor(
    `${userId}'s connection ready`,
    async () => {
      const got = expectStatus(await api("GET", `/v1/sessions/${s.sessionId}`), 200);
      return got.connection?.state === "READY" && got.userData?.state === "ATTACHED";
    },
    60_000,
  );
  return s;
}

/** The user's shell on the desktop (its serial console). */
async function shell(desktopId: string) {
  const console = new ConsoleSession(await hypervisor().console(desktopId));
  await console.run("true");
  return console;
}

beforeAll(async () => {
  const guest = await testGuest();
  r = await startTestRegion({
    hypervisor: "qemu",
    guestDir: guest.dir,
    reconcileEveryMs: 0,
    hostHeartbeatMs: 1000,
  });
  tenant = await newTenant(r);
  const source = await importPath(r, tenant.tenantId, "desktop.qcow2");
  await copyFile(guest.disk, source);
  ({ imageId } = await readyImage(r, tenant.key, { path: source }));
  const pool = expectStatus(await api("POST", "/v1/pools", { name: "vms", imageId, size: 3 }), 201);
  poolId = pool.poolId;
  await waitFor(
    "3 desktops booted and ready",
    async () => {
      for (const d of await desktops()) seenStates.add(d.state);
      return (await desktops()).every((d) => d.state === "AVAILABLE");
    },
    bootMs,
    200,
  );
}, 300_000);
afterAll(async () => {
  await r?.stop();
});

describe("a pool of VMs", () => {
  it("runs one VM per desktop, from its linked clone, handed out only once its agent is ready", async () => {
    const ds = await desktops();
    const vms = await hypervisor().list();
    expect(vms.map((v) => v.vmId).sort()).toEqual(ds.map((d) => d.desktopId).sort());
    for (const d of ds) {
      const [drive] = (await hypervisor().blockInfo(d.desktopId)).filter((b) => !b.readOnly || b.backingFile);
      expect(drive?.file).toBe(r.paths.desktop(d));
      expect(drive?.backingFile).toBe(
        r.paths.replica({ tenantId: tenant.tenantId, imageId, version: 1 }, "ds-default"),
      );
      // The console is set by the agent's Desktop Ready, on the way from STARTING to AVAILABLE.
      expect(d.console).toMatchObject({ host: "127.0.0.1", port: expect.any(Number) });
    }
    expect(seenStates.has("STARTING")).toBe(true);
  });
});

describe("a session on a VM", () => {
  let alice: any;
  let otherScreen: Buffer;

  it("gets a VNC endpoint whose one-time password opens it, and no other password does", async () => {
    alice = await logon("alice");
    expect(alice.connection).toMatchObject({
      protocol: "vnc",
      host: "127.0.0.1",
      password: expect.any(String),
    });
    const { host, port, password } = alice.connection;
    expect(await vncLogin(host, port, password)).toMatchObject({ ok: true });
    expect(await vncLogin(host, port, "wrong-pw")).toMatchObject({ ok: false });
  });

  it("a logon retried with the same Idempotency-Key gets a fresh password; no password is stored", async () => {
    const retry = async () => {
      const res = await fetch(`${r.region.apiUrl}/v1/pools/${poolId}/logons`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${tenant.key}`,
          "content-type": "application/json",
          "idempotency-key": "alice-logon-1",
        },
        body: JSON.stringify({ userId: "alice" }),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as any;
    };
    const [first, second] = [await retry(), await retry()];
    expect(second.sessionId).toBe(alice.sessionId);
    expect(second.connection.password).not.toBe(first.connection.password);
    const table = await tableSnapshot(r.region);
    for (const password of [alice.connection.password, first.connection.password, second.connection.password])
      expect(table).not.toContain(password);
    // The VM now takes the newest password: it is alice's from here on.
    alice = { ...alice, connection: second.connection };
    await waitFor("the newest password opens the desktop", async () => {
      const { host, port, password } = alice.connection;
      return (await vncLogin(host, port, password)).ok;
    });
  });

  it("shows the user's id on the screen (a PNG that differs from a desktop nobody uses)", async () => {
    const screenshot = () =>
      fetch(`${r.region.apiUrl}/v1/sessions/${alice.sessionId}/screenshot`, {
        headers: { authorization: `Bearer ${tenant.key}` },
      });
    const res = await screenshot();
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    const free = (await desktops()).find((d) => d.state === "AVAILABLE");
    otherScreen = await hypervisor().screenshot(free.desktopId);
    const idle = decodePng(otherScreen);
    let png = decodePng(Buffer.from(await res.arrayBuffer()));
    // The guest draws the banner after the logon answered (slowly, under TCG): wait for it.
    await waitFor(
      "alice's banner on the screen",
      async () => {
        if (differingPixels(png, idle, bannerRegion) > 1000) return true;
        png = decodePng(Buffer.from(await (await screenshot()).arrayBuffer()));
        return false;
      },
      30_000,
    );
    expect(differingPixels(png, idle, bannerRegion)).toBeGreaterThan(1000);
  });

  it("another tenant gets 404 for the session's screenshot and the pool's logons", async () => {
    const b = await newTenant(r, "other");
    const shot = await r.api("GET", `/v1/sessions/${alice.sessionId}/screenshot`, { key: b.key });
    expect(shot.status).toBe(404);
    const logon = await r.api("POST", `/v1/pools/${poolId}/logons`, {
      key: b.key,
      body: { userId: "mallory" },
    });
    expect(logon.status).toBe(404);
  });

  it("logoff typed in the desktop ends the session; the desktop comes back pristine; the data stays the user's", async () => {
    const desktopId = alice.desktopId as string;
    const password = alice.connection.password as string;
    const console = await shell(desktopId);
    await waitFor(
      "alice's data mounted",
      async () => (await console.run("grep -q ' /home/user ' /proc/mounts")).status === 0,
      60_000,
    );
    expect(
      (await console.run("echo desk > /root/alice-was-here && echo mine > /home/user/alice.txt && sync"))
        .status,
    ).toBe(0);
    // Two other users take the other desktops, so that bob gets alice's after her logoff.
    const carol = await logon("carol");
    const dave = await logon("dave");
    console.type("logoff");
    await waitFor(
      "alice logged off by event",
      async () => {
        const s = expectStatus(await api("GET", `/v1/sessions/${alice.sessionId}`), 200);
        return s.state === "ENDED" && s.endedBy === "event";
      },
      60_000,
    );
    await waitFor(
      "alice's desktop rebuilt and ready",
      async () => (await desktops()).some((d) => d.desktopId === desktopId && d.state === "AVAILABLE"),
      bootMs,
    );
    const console2 = (await desktops()).find((d) => d.desktopId === desktopId).console;
    expect(await vncLogin(console2.host, console2.port, password)).toMatchObject({ ok: false });

    const bob = await logon("bob");
    expect(bob.desktopId).toBe(desktopId);
    const bobs = await shell(desktopId);
    expect((await bobs.run("test -e /root/alice-was-here")).status).not.toBe(0);
    expectStatus(await api("POST", `/v1/sessions/${bob.sessionId}/logoff`), 200);
    for (const s of [carol, dave]) expectStatus(await api("POST", `/v1/sessions/${s.sessionId}/logoff`), 200);
    await waitForCounts(r, tenant.key, poolId, { AVAILABLE: 3 }, bootMs);

    const again = await logon("alice");
    const hers = await shell(again.desktopId);
    await waitFor(
      "alice's data mounted again",
      async () => (await hers.run("grep -q ' /home/user ' /proc/mounts")).status === 0,
      60_000,
    );
    const read = await hers.run("cat /home/user/alice.txt");
    expect(read.output).toContain("mine");
    expectStatus(await api("POST", `/v1/sessions/${again.sessionId}/logoff`), 200);
    await waitForCounts(r, tenant.key, poolId, { AVAILABLE: 3 }, bootMs);
  });
});

describe("a logoff's commit", () => {
  afterAll(() => setCheckpointHook(undefined));

  it("that runs while the desktop still holds the disk is done once the host lets go of it", async () => {
    const erin = await logon("erin");
    const desk = await shell(erin.desktopId);
    await waitFor(
      "erin's data mounted",
      async () => (await desk.run("grep -q ' /home/user ' /proc/mounts")).status === 0,
      60_000,
    );
    expect((await desk.run("echo erins > /home/user/erin.txt && sync")).status).toBe(0);
    // The refresh (which powers the VM off, letting go of the disk) waits until the commit has
    // run and found the disk still plugged in: the order the README walkthrough met.
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    setCheckpointHook(async (name, ids) => {
      if (name === "refresh:before-disk" && ids.desktopId === erin.desktopId) await held;
    });
    expectStatus(await api("POST", `/v1/sessions/${erin.sessionId}/logoff`), 200);
    await waitUntilDrained(r, r.region.dr.userData.url);
    expect(expectStatus(await api("GET", `/v1/sessions/${erin.sessionId}`), 200).userData.state).toBe(
      "COMMITTING",
    );
    release();
    await waitFor(
      "erin's change committed as version 1",
      async () => {
        const s = expectStatus(await api("GET", `/v1/sessions/${erin.sessionId}`), 200);
        return s.userData.state === "COMMITTED" && s.userData.version === 1;
      },
      60_000,
    );
    await waitForCounts(r, tenant.key, poolId, { AVAILABLE: 3 }, bootMs);
  });
});

/** What the test reads of the page's canvas (the tests are typed without the DOM library). */
interface Canvas {
  width: number;
  height: number;
  getContext(kind: "2d"): {
    getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray };
  };
}

// The web console's live screen (noVNC over the VM's WebSocket port), in Debian's chromium.
describe.skipIf(!existsSync(chromiumPath) && !process.env.CI)("the web console", () => {
  it("shows a session's screen live over noVNC, with the logon's one-time password", async () => {
    await ensureConsole(() => undefined);
    const profile = await mkdtemp(join(tmpdir(), "pristine-chromium-"));
    const browser = await launchChromium(profile);
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      await page.goto(`${r.region.apiUrl}/console/`);
      await page.locator('input[name="apiKey"]').fill(tenant.key);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.locator(`[data-pool-row="${poolId}"] button`).first().click();
      await page.getByPlaceholder("user id").fill("vera");
      await page.getByRole("button", { name: "Log on" }).click();
      await page.locator('nav button[data-tab="Sessions"]').click();
      await page.getByRole("button", { name: "Connect" }).first().click();
      const screen = page.getByTestId("vnc");
      await screen.getByText("connected", { exact: true }).waitFor({ timeout: 60_000 });
      // The desktop's banner is white on blue: most of the drawn screen is that blue.
      await waitFor(
        "the desktop's screen drawn in the page",
        async () =>
          (await screen.locator("canvas").evaluate((c: Canvas) => {
            const { data } = c.getContext("2d").getImageData(0, 0, c.width, c.height);
            let blue = 0;
            for (let i = 0; i < data.length; i += 4)
              if ((data[i + 2] as number) > 140 && (data[i] as number) < 60 && (data[i + 1] as number) < 60)
                blue++;
            return blue / (data.length / 4);
          })) > 0.5,
        60_000,
      );
      await mkdir(join("test-output", "console"), { recursive: true });
      await page.screenshot({ path: join("test-output", "console", "vnc-live.png") });
    } finally {
      await browser.close();
      await rm(profile, { recursive: true, force: true });
    }
    const vera = expectStatus(await api("GET", `/v1/pools/${poolId}/desktops`), 200).items.find(
      (d: { userId?: string }) => d.userId === "vera",
    );
    expectStatus(await api("POST", `/v1/sessions/${vera.sessionId}/logoff`), 200);
    await waitForCounts(r, tenant.key, poolId, { AVAILABLE: 3 }, bootMs);
  });
});

describe("failures", () => {
  const pidOf = async (desktopId: string) =>
    (await hypervisor().list()).find((v) => v.vmId === desktopId)?.pid as number;

  it("a VM killed in a session ends it (desktop-failure) and the desktop is rebuilt", async () => {
    const s = await logon("erin");
    process.kill(await pidOf(s.desktopId), "SIGKILL");
    await waitFor(
      "session ended by the failure",
      async () => {
        const got = expectStatus(await api("GET", `/v1/sessions/${s.sessionId}`), 200);
        return got.state === "ENDED" && got.endedBy === "desktop-failure";
      },
      60_000,
    );
    await waitForCounts(r, tenant.key, poolId, { AVAILABLE: 3 }, bootMs);
  });

  it("a VM killed while free is restarted, and not handed out while down", async () => {
    const [victim] = await desktops();
    process.kill(await pidOf(victim.desktopId), "SIGKILL");
    await waitFor(
      "withdrawn",
      async () => (await desktops()).find((d) => d.desktopId === victim.desktopId)?.state === "STARTING",
      30_000,
      20,
    );
    await waitForCounts(r, tenant.key, poolId, { AVAILABLE: 3 }, bootMs);
  });

  it("a VM that dies before it says ready is quarantined, not restarted for ever; the reconciler replaces it", async () => {
    const [victim] = await desktops();
    const firstPid = await pidOf(victim.desktopId);
    process.kill(firstPid, "SIGKILL");
    // Restarted once (it had been ready); killed again before its agent is up.
    let restartedPid: number | undefined;
    await waitFor(
      "restarted",
      async () => {
        const d = (await desktops()).find((x) => x.desktopId === victim.desktopId);
        restartedPid = await pidOf(victim.desktopId);
        return d?.state === "STARTING" && restartedPid !== undefined && restartedPid !== firstPid;
      },
      30_000,
      20,
    );
    process.kill(restartedPid as number, "SIGKILL");
    await waitFor("quarantined", async () => {
      const d = (await desktops()).find((x) => x.desktopId === victim.desktopId);
      return d?.state === "ERROR" && /exited before Desktop Ready/.test(d.error);
    });
    expect((await hypervisor().list()).map((v) => v.vmId)).not.toContain(victim.desktopId);
    await reconcile(r.region.app.ports, 0);
    await waitForCounts(r, tenant.key, poolId, { AVAILABLE: 3, ERROR: 0 }, bootMs);
  });

  it("a stopped host agent's desktops are withdrawn until it is back", async () => {
    await r.region.host?.stop();
    const report = await reconcile(r.region.app.ports, 15 * 60_000, { hostDeadlineMs: 0 });
    expect(report.repaired["late-host"]).toBe(1);
    await waitForCounts(r, tenant.key, poolId, { UNREACHABLE: 3, AVAILABLE: 0 });
    const refused = await api("POST", `/v1/pools/${poolId}/logons`, { userId: "frank" });
    expect(refused.status).toBe(503);
    await r.region.restartHost();
    await waitForCounts(r, tenant.key, poolId, { AVAILABLE: 3 }, bootMs);
  });
});

describe("a dedicated desktop on a VM", () => {
  let dedicated: string;

  it("keeps its disk across logoff, but its VM restarts: the user's VNC client does not outlive the session", async () => {
    dedicated = expectStatus(
      await api("POST", "/v1/pools", { name: "mine", imageId, size: 1, assignment: "dedicated" }),
      201,
    ).poolId;
    await waitForCounts(r, tenant.key, dedicated, { AVAILABLE: 1 }, bootMs);
    const s = await logon("gina", dedicated);
    const desk = await shell(s.desktopId);
    expect((await desk.run("echo kept > /root/gina-was-here && sync")).status).toBe(0);
    const { host, port, password } = s.connection;
    const client = await vncLogin(host, port, password, 10_000, { hold: true });
    expect(client).toMatchObject({ ok: true });
    expectStatus(await api("POST", `/v1/sessions/${s.sessionId}/logoff`), 200);
    let cut = false;
    void (client as { closed: Promise<void> }).closed.then(() => {
      cut = true;
    });
    await waitFor("gina's VNC client cut off", async () => cut, 60_000);
    await waitForCounts(r, tenant.key, dedicated, { AVAILABLE: 1 }, bootMs);
    const again = await logon("gina", dedicated);
    expect(again.desktopId).toBe(s.desktopId);
    expect((await (await shell(again.desktopId)).run("cat /root/gina-was-here")).output).toContain("kept");
    expectStatus(await api("POST", `/v1/sessions/${again.sessionId}/logoff`), 200);
    await waitForCounts(r, tenant.key, dedicated, { AVAILABLE: 1 }, bootMs);
  });

  it("a pool deleted in a session still commits the user's data: the user's next logon has it", async () => {
    const s = await logon("gina", dedicated);
    const desk = await shell(s.desktopId);
    await waitFor(
      "gina's data mounted",
      async () => (await desk.run("grep -q ' /home/user ' /proc/mounts")).status === 0,
      60_000,
    );
    expect((await desk.run("echo ginas > /home/user/gina.txt && sync")).status).toBe(0);
    expectStatus(await api("DELETE", `/v1/pools/${dedicated}`), 202);
    await waitFor(
      "the dedicated pool deleted",
      async () => (await api("GET", `/v1/pools/${dedicated}`)).status === 404,
      60_000,
    );
    // logon() waits for her data to be ATTACHED: it never is while the old disk is held.
    const elsewhere = await logon("gina");
    const hers = await shell(elsewhere.desktopId);
    await waitFor(
      "gina's data mounted on a desktop of the other pool",
      async () => (await hers.run("grep -q ' /home/user ' /proc/mounts")).status === 0,
      60_000,
    );
    expect((await hers.run("cat /home/user/gina.txt")).output).toContain("ginas");
    expectStatus(await api("POST", `/v1/sessions/${elsewhere.sessionId}/logoff`), 200);
  });
});
