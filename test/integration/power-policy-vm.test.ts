/**
 * The power policy of a self-sizing pool, with desktops that run (real qemu-system-x86_64, TCG
 * here, three small VMs of the guest from `npm run image:build`): `poweredOnSpare: 1` keeps exactly
 * one free VM running and the others powered off (STOPPED, disk kept); a logon that takes the
 * running one has a stopped one started for the next user.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectStatus, startVmRegion, type TestRegion, waitFor } from "./harness.ts";

let r: TestRegion;
let tenant: { tenantId: string; key: string };
let poolId: string;

const api = (method: string, path: string, body?: unknown) =>
  r.api(method, path, { key: tenant.key, ...(body !== undefined ? { body } : {}) });
const desktops = async () =>
  expectStatus(await api("GET", `/v1/pools/${poolId}/desktops`), 200).items as any[];
const byState = async () => {
  const counts: Record<string, number> = {};
  for (const d of await desktops()) counts[d.state] = (counts[d.state] ?? 0) + 1;
  return counts;
};
/** The pool's desktops whose VM the host runs now. */
const runningVms = async () => {
  const host = r.region.host;
  if (!host) throw new Error("the region runs no host");
  const ids = new Set((await desktops()).map((d) => d.desktopId));
  const vms = await host.runtime.hypervisor.list();
  return vms.filter((vm) => ids.has(vm.vmId)).map((vm) => vm.vmId);
};

beforeAll(async () => {
  let imageId: string;
  ({ r, tenant, imageId } = await startVmRegion());
  const pool = expectStatus(
    await api("POST", "/v1/pools", {
      name: "power",
      imageId,
      minSize: 3,
      maxSize: 3,
      spare: 3,
      poweredOnSpare: 1,
    }),
    201,
  );
  poolId = pool.poolId;
}, 300_000);
afterAll(async () => {
  await r?.stop();
});

describe("power policy", () => {
  it("keeps exactly one free VM running and the others stopped; a logon has a stopped one started", async () => {
    await waitFor(
      "one free desktop running, two stopped",
      async () => {
        const c = await byState();
        return c.AVAILABLE === 1 && c.STOPPED === 2;
      },
      240_000,
      500,
    );
    const free = (await desktops()).find((d) => d.state === "AVAILABLE");
    // A stopped desktop leaves the free list first, then its VM is shut down (ACPI, a few seconds).
    await waitFor(
      "only the free desktop's VM running",
      async () => (await runningVms()).length === 1,
      60_000,
    );
    expect(await runningVms()).toEqual([free.desktopId]);

    const session = expectStatus(await api("POST", `/v1/pools/${poolId}/logons`, { userId: "ann" }), 200);
    expect(session.desktopId).toBe(free.desktopId);
    await waitFor(
      "a stopped desktop started for the next user",
      async () => {
        const c = await byState();
        return c.ASSIGNED === 1 && c.AVAILABLE === 1 && c.STOPPED === 1;
      },
      240_000,
      500,
    );
    const after = await desktops();
    await waitFor("two VMs running", async () => (await runningVms()).length === 2, 60_000);
    const running = await runningVms();
    expect(running.sort()).toEqual(
      after
        .filter((d) => d.state === "ASSIGNED" || d.state === "AVAILABLE")
        .map((d) => d.desktopId)
        .sort(),
    );
    const stopped = after.find((d) => d.state === "STOPPED");
    expect(running).not.toContain(stopped.desktopId);
  }, 600_000);
});
