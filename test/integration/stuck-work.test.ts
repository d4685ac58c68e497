/** Work that never ended, or multiplied: imports that hang, re-sends every minute, copies per process. */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { documentClient } from "../../shared/adapters/dynamodb/client.ts";
import { keys, watch } from "../../shared/adapters/dynamodb/keys.ts";
import { createApp } from "../../shared/app.ts";
import { defaultWorkerSettings, runCloneJob } from "../../shared/domain/clone-jobs.ts";
import { RetryLater } from "../../shared/domain/errors.ts";
import { reconcile } from "../../shared/domain/reconcile.ts";
import { setCheckpointHook } from "../../shared/faults.ts";
import { expectStatus, readyImage, readyPool, useTenantRegion, waitFor } from "./harness.ts";

const fx = useTenantRegion({ region: { reconcileEveryMs: 0 } });
afterEach(() => setCheckpointHook(undefined));

describe("work that never ends or multiplies", () => {
  it("an import that keeps failing ends FAILED with a reason, can be deleted, and does not block new pools", async () => {
    const { imageId } = await readyImage(fx.r, fx.tenant.key, { blankSizeMiB: 16 });
    // Version 2's place in the image store is taken by a folder: every import attempt fails.
    await mkdir(join(fx.r.paths.image({ tenantId: fx.tenant.tenantId, imageId, version: 2 }), "in-the-way"), {
      recursive: true,
    });
    expectStatus(
      await fx.r.api("POST", `/v1/images/${imageId}/versions`, {
        key: fx.tenant.key,
        body: { source: { blankSizeMiB: 16 } },
      }),
      202,
    );
    let v2: any;
    await waitFor(
      "v2 FAILED",
      async () => {
        const image = expectStatus(
          await fx.r.api("GET", `/v1/images/${imageId}`, { key: fx.tenant.key }),
          200,
        );
        v2 = image.versions.find((v: any) => v.version === 2);
        return v2?.state === "FAILED";
      },
      60_000,
    );
    expect(v2.error).toMatch(/failed on every try/);
    expect(v2.error).not.toContain(fx.r.dataDir);
    // A pool without a version takes the newest READY one, not the failed latest.
    const poolId = await readyPool(fx.r, fx.tenant.key, imageId, 1);
    expect(
      expectStatus(await fx.r.api("GET", `/v1/pools/${poolId}`, { key: fx.tenant.key }), 200).imageVersion,
    ).toBe(1);
    // Once the cause is gone (here: the folder in the way), the failed version can be deleted.
    await rm(fx.r.paths.image({ tenantId: fx.tenant.tenantId, imageId, version: 2 }), { recursive: true });
    expect(
      (await fx.r.api("DELETE", `/v1/images/${imageId}/versions/2`, { key: fx.tenant.key })).status,
    ).toBe(204);
  });

  it("the reconciler re-sends a stuck desktop's job once per stale period, not at every tick", async () => {
    const { imageId } = await readyImage(fx.r, fx.tenant.key, { blankSizeMiB: 16 });
    const poolId = await readyPool(fx.r, fx.tenant.key, imageId, 1);
    const [d] = expectStatus(
      await fx.r.api("GET", `/v1/pools/${poolId}/desktops`, { key: fx.tenant.key }),
      200,
    ).items;
    // Stuck: PROVISIONING for an hour, its job long lost (in the watch index as a transition puts it).
    await documentClient(fx.r.region.app.dynamodb).send(
      new UpdateCommand({
        TableName: fx.r.region.app.config.tableName,
        Key: keys.desktop(fx.tenant.tenantId, poolId, d.desktopId),
        UpdateExpression:
          "SET #state = :p, updatedAt = :old, gsi2pk = :watch, gsi2sk = :old REMOVE gsi1pk, gsi1sk",
        ExpressionAttributeNames: { "#state": "state" },
        ExpressionAttributeValues: {
          ":p": "PROVISIONING",
          ":old": new Date(Date.now() - 3600_000).toISOString(),
          ":watch": watch.partition("TRANSIT", d.desktopId),
        },
      }),
    );
    const staleAfterMs = 15 * 60_000;
    const first = await reconcile(fx.r.region.app.ports, staleAfterMs);
    const second = await reconcile(fx.r.region.app.ports, staleAfterMs);
    expect(first.requeued["provision-desktop"]).toBe(1);
    expect(second.requeued["provision-desktop"] ?? 0).toBe(0);
  });

  it("a replica is copied once per datastore, however many worker processes need it", async () => {
    const { imageId } = await readyImage(fx.r, fx.tenant.key, { blankSizeMiB: 64 });
    // Two workers with their own drivers, as two processes have.
    const one = createApp(fx.r.region.app.config);
    const two = createApp(fx.r.region.app.config);
    const apps = [one, two];
    let copies = 0;
    for (const app of apps) {
      const ensure = app.ports.storage.ensureReplica.bind(app.ports.storage);
      app.ports.storage.ensureReplica = (v, ds) => {
        copies++;
        return ensure(v, ds);
      };
    }
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let holding!: () => void;
    const copying = new Promise<void>((r) => {
      holding = r;
    });
    setCheckpointHook(async (name) => {
      if (name !== "replica:copying") return;
      holding();
      await held;
    });
    const job = {
      kind: "prepare-replica" as const,
      tenantId: fx.tenant.tenantId,
      imageId,
      version: 1,
      datastoreId: "ds-default",
    };
    // The second worker waits a little for the first one's copy, then comes back later.
    const settings = { ...defaultWorkerSettings, replicaWaitMs: 300 };
    const first = runCloneJob(one.ports, job, settings);
    await copying;
    setCheckpointHook(undefined);
    await expect(runCloneJob(two.ports, job, settings)).rejects.toBeInstanceOf(RetryLater);
    release();
    await first;
    // The second worker's retry finds the replica in place.
    expect(await runCloneJob(two.ports, job, settings)).toBe("replica ready");
    expect(copies).toBe(1);
    for (const app of apps) app.sqs.destroy();
  });
});
