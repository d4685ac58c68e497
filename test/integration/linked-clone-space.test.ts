import { stat } from "node:fs/promises";
import { expect, it } from "vitest";
import { importPath, newTenant, readyImage, readyPool, run, useTenantRegion } from "./harness.ts";

const fx = useTenantRegion();

const usedBytes = async (path: string) => (await stat(path)).blocks * 512;

it("40 linked clones of an image holding 256 MiB take under 5% of 40 full copies", async () => {
  const { tenantId, key } = await newTenant(fx.r);
  const source = await importPath(fx.r, tenantId, "golden.qcow2");
  await run("qemu-img", ["create", "-q", "-f", "qcow2", source, "1G"]);
  await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 0 256M", source]);
  const { imageId, version } = await readyImage(fx.r, key, { path: source });
  const poolId = await readyPool(fx.r, key, imageId, 40);

  const image = await usedBytes(fx.r.paths.image({ tenantId, imageId, version }));
  expect(image).toBeGreaterThanOrEqual(256 * 1024 * 1024);
  const replica = await usedBytes(fx.r.paths.replica({ tenantId, imageId, version }, "ds-default"));
  const desktops = (await fx.r.api("GET", `/v1/pools/${poolId}/desktops`, { key })).body.items;
  expect(desktops).toHaveLength(40);
  let deltas = 0;
  for (const d of desktops) deltas += await usedBytes(fx.r.paths.desktop(d));
  // The pool's whole footprint (its replica included) against forty full copies.
  const ratio = (replica + deltas) / (40 * image);
  expect(ratio).toBeLessThan(0.05);
  console.log(
    `linked pool: replica ${replica} B + 40 deltas ${deltas} B = ${(ratio * 100).toFixed(2)}% of 40 full copies`,
  );
});
