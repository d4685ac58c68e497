/**
 * Session timeouts with a desktop that runs (real qemu-system-x86_64, TCG here, one VM of the
 * guest from `npm run image:build`): the guest's own idle report goes through its host and the
 * event path, the timeout warning comes back to the guest's screen, and the logoff refreshes the
 * desktop (a new VM on a new disk generation).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConsoleSession, decodePng, differingPixels } from "../support/vm.ts";
import { expectStatus, startVmRegion, type TestRegion, waitFor } from "./harness.ts";

let r: TestRegion;
let tenant: { tenantId: string; key: string };
let poolId: string;
/** The lines below the user's banner, where the agent writes the warning. */
const warningRegion = { x: 0, y: 10 * 16, width: 720, height: 8 * 16 };

const api = (method: string, path: string, body?: unknown) =>
  r.api(method, path, { key: tenant.key, ...(body !== undefined ? { body } : {}) });
const desktops = async () =>
  expectStatus(await api("GET", `/v1/pools/${poolId}/desktops`), 200).items as any[];
const getSession = async (id: string) => expectStatus(await api("GET", `/v1/sessions/${id}`), 200);
const hypervisor = () => {
  const host = r.region.host;
  if (!host) throw new Error("the region runs no host");
  return host.runtime.hypervisor;
};

beforeAll(async () => {
  let imageId: string;
  ({ r, tenant, imageId } = await startVmRegion());
  const pool = expectStatus(
    await api("POST", "/v1/pools", {
      name: "timeouts",
      imageId,
      size: 1,
      sessionTimeouts: { idleSeconds: 20, warningSeconds: 15 },
    }),
    201,
  );
  poolId = pool.poolId;
  await waitFor(
    "the desktop booted and ready",
    async () => (await desktops()).every((d) => d.state === "AVAILABLE"),
    180_000,
    200,
  );
}, 300_000);
afterAll(async () => {
  await r?.stop();
});

describe("a session on a VM that goes idle", () => {
  it("is reported idle by its agent, warned on its screen, logged off, and its desktop rebuilt", async () => {
    const s = expectStatus(await api("POST", `/v1/pools/${poolId}/logons`, { userId: "alice" }), 200);
    await waitFor(
      "alice's connection ready",
      async () => (await getSession(s.sessionId)).connection?.state === "READY",
      60_000,
    );
    const [before] = await desktops();
    const screen = decodePng(await hypervisor().screenshot(s.desktopId));

    // The agent's idle report, as the guest sends it (the same channel its logoff uses).
    const console = new ConsoleSession(await hypervisor().console(s.desktopId));
    try {
      await console.run("true");
      const saidAt = Date.now();
      const sent = await console.run(`printf '%s\\n' '{"type":"idle","idleSeconds":10}' >/run/pristine/out`);
      expect(sent.status).toBe(0);
      let session: any;
      await waitFor("the idle report relayed and recorded", async () => {
        session = await getSession(s.sessionId);
        return session.idleSince !== undefined;
      });
      const idleSince = Date.parse(session.idleSince);
      expect(idleSince).toBeGreaterThanOrEqual(saidAt - 10_000 - 1000);
      expect(idleSince).toBeLessThanOrEqual(Date.now() - 10_000);

      // Past the warning (20 - 15 s after idleSince already): warned at once, on the screen too.
      await waitFor("the warning", async () => (await getSession(s.sessionId)).timeoutWarning !== undefined);
      // What the screen says (the text of tty1, read in the guest).
      await waitFor(
        "the warning on the desktop's screen",
        async () =>
          (await console.run("tr -s ' ' </dev/vcs1 | grep -q 'Session timeout (idle-timeout)'")).status === 0,
        20_000,
        250,
      );
      expect(
        differingPixels(decodePng(await hypervisor().screenshot(s.desktopId)), screen, warningRegion),
      ).toBeGreaterThan(0);
    } finally {
      console.close();
    }

    let ended: any;
    await waitFor(
      "alice logged off",
      async () => {
        ended = await getSession(s.sessionId);
        return ended.state === "ENDED";
      },
      60_000,
    );
    expect(ended.endedBy).toBe("idle-timeout");
    expect(ended.timeoutWarning.reason).toBe("idle-timeout");
    expect(Date.parse(ended.endedAt)).toBeGreaterThanOrEqual(Date.parse(ended.timeoutWarning.logoffAt));
    await waitFor(
      "the desktop rebuilt and ready again",
      async () => {
        const [d] = await desktops();
        return d.state === "AVAILABLE" && d.generation > before.generation;
      },
      180_000,
      250,
    );
  });
});
