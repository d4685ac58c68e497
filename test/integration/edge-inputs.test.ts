/** Edge inputs that once got through: each answers a 4xx that names the problem and changes nothing. */
import { describe, expect, it } from "vitest";
import { expectStatus, readyPool, useTenantRegion } from "./harness.ts";

const fx = useTenantRegion({ image: { blankSizeMiB: 16 } });

const pools = async () => expectStatus(await fx.r.api("GET", "/v1/pools", { key: fx.tenant.key }), 200).items;

describe("edge inputs", () => {
  it("user ids . and .. are refused (they would name shared folders)", async () => {
    const poolId = await readyPool(fx.r, fx.tenant.key, fx.imageId, 1);
    for (const userId of [".", ".."]) {
      const res = await fx.r.api("POST", `/v1/pools/${poolId}/logons`, {
        key: fx.tenant.key,
        body: { userId },
      });
      expect(res.status, userId).toBe(400);
      expect(res.body.field).toBe("body.userId");
    }
    expect(
      expectStatus(await fx.r.api("GET", `/v1/pools/${poolId}`, { key: fx.tenant.key }), 200).desktopCounts,
    ).toMatchObject({
      ASSIGNED: 0,
    });
  });

  it("a malformed percent-escape in a path answers 400, with or without a key", async () => {
    for (const bad of ["%E0", "%ZZ", "%"]) {
      for (const key of [fx.tenant.key, undefined]) {
        const res = await fx.r.api("GET", `/v1/pools/${bad}`, key ? { key } : {});
        expect(res.status, `${bad} ${key ? "with" : "without"} key`).toBe(400);
        expect(res.body.type).toMatch(/validation-error$/);
      }
    }
  });

  it("numbers the table cannot hold are refused, not a 500", async () => {
    const before = await pools();
    const res = await fx.r.api("POST", "/v1/pools", {
      key: fx.tenant.key,
      body: {
        name: "tiny",
        imageId: fx.imageId,
        size: 1,
        assignment: "dedicated",
        refreshPolicy: "none",
        refreshWhenDeltaExceedsPercent: 1e-300,
      },
    });
    expect(res.status).toBe(400);
    expect(res.body.field).toBe("body.refreshWhenDeltaExceedsPercent");
    expect(await pools()).toEqual(before);
  });

  it("a floating pool that would keep one user's changes for the next is refused", async () => {
    const res = await fx.r.api("POST", "/v1/pools", {
      key: fx.tenant.key,
      body: { name: "leaky", imageId: fx.imageId, size: 1, refreshPolicy: "none" },
    });
    expect(res.status).toBe(400);
    expect(res.body.field).toBe("body.refreshPolicy");
  });

  it("names with control or bidirectional characters are refused", async () => {
    for (const name of ["invoice\u202Efdp.exe", "a\u0000b", "tab\there", "zero\u200Bwidth"]) {
      const res = await fx.r.api("POST", "/v1/images", { key: fx.tenant.key, body: { name } });
      expect(res.status, JSON.stringify(name)).toBe(400);
      expect(res.body.field).toBe("body.name");
    }
  });

  it("JSON sent as text/plain answers 415", async () => {
    const res = await fx.r.api("POST", "/v1/images", {
      key: fx.tenant.key,
      raw: JSON.stringify({ name: "plain" }),
      contentType: "text/plain",
    });
    expect(res.status).toBe(415);
    expect(res.body.type).toMatch(/unsupported-media-type$/);
  });

  it("the local event stand-in answers a tenant key with 403", async () => {
    const res = await fx.r.api("POST", "/local/events", { key: fx.tenant.key, body: {} });
    expect(res.status).toBe(403);
    const anonymous = await fx.r.api("POST", "/local/events", { body: {} });
    expect(anonymous.status).toBe(401);
  });
});
