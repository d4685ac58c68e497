/** A host that cannot run VMs (its hypervisor is missing) is refused at once, with the reason. */
import { afterAll, describe, expect, it } from "vitest";
import { expectStatus, newTenant, readyImage, startTestRegion, type TestRegion } from "./harness.ts";

describe("a host whose hypervisor is missing", () => {
  let broken: TestRegion;
  afterAll(async () => {
    await broken?.stop();
  });

  it("refuses a pool on it with a clear error, at once", async () => {
    broken = await startTestRegion({
      hypervisor: "qemu",
      qemuBinary: "/nonexistent/qemu-system-x86_64",
      reconcileEveryMs: 0,
    });
    const t = await newTenant(broken);
    const { imageId: blank } = await readyImage(broken, t.key, { blankSizeMiB: 8 });
    const started = Date.now();
    const res = await broken.api("POST", "/v1/pools", {
      key: t.key,
      body: { name: "nowhere", imageId: blank, size: 1 },
    });
    expect(res.status).toBe(409);
    expect(res.body.type).toMatch(/host-unavailable$/);
    expect(res.body.detail).toMatch(
      /cannot run desktops: .*qemu-system-x86_64 is not installed.*qemu-system-x86/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(expectStatus(await broken.api("GET", "/v1/pools", { key: t.key }), 200).items).toEqual([]);
  });
});
