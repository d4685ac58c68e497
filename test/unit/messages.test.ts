import { describe, expect, it } from "vitest";
import { loadConfig } from "../../shared/config.ts";
import { hashApiKey, newApiKey } from "../../shared/domain/tenants.ts";
import { cloneJobSchema } from "../../shared/messages/clone-job.ts";
import { logoffEvent, logoffEventSchema } from "../../shared/messages/logoff-event.ts";

describe("messages", () => {
  it("accepts the DESIGN.md logoff event and rejects other shapes", () => {
    const e = logoffEvent({ tenantId: "t", sessionId: "s", desktopId: "d", at: "2026-11-30T10:00:00Z" });
    expect(logoffEventSchema.parse(JSON.parse(JSON.stringify(e)))).toEqual(e);
    expect(logoffEventSchema.safeParse({ ...e, "detail-type": "Session Logon" }).success).toBe(false);
    expect(logoffEventSchema.safeParse({ ...e, detail: { ...e.detail, at: "yesterday" } }).success).toBe(
      false,
    );
  });

  it("parses every clone job kind and keys jobs stably", () => {
    const refresh = cloneJobSchema.parse({
      kind: "refresh-desktop",
      tenantId: "t",
      poolId: "p",
      desktopId: "d",
      sessionId: "s",
    });
    expect(refresh).toMatchObject({ kind: "refresh-desktop", sessionId: "s" });
    expect(
      cloneJobSchema.safeParse({ kind: "refresh-desktop", tenantId: "t", poolId: "p", desktopId: "d" })
        .success,
    ).toBe(false);
    expect(cloneJobSchema.safeParse({ kind: "format-c", tenantId: "t" }).success).toBe(false);
  });
});

describe("api keys and config", () => {
  it("stores keys as a sha256 that never equals the key", () => {
    const key = newApiKey();
    expect(key).toMatch(/^prs_[A-Za-z0-9_-]{43}$/);
    expect(hashApiKey(key)).toMatch(/^[0-9a-f]{64}$/);
    expect(hashApiKey(key)).toBe(hashApiKey(key));
    expect(hashApiKey(key)).not.toContain(key);
  });

  it("names the missing setting", () => {
    expect(() => loadConfig({})).toThrow(/PRISTINE_TABLE_NAME/);
    expect(() =>
      loadConfig({ PRISTINE_TABLE_NAME: "t", PRISTINE_CLONE_JOBS_QUEUE_URL: "not a url" }),
    ).toThrow(/PRISTINE_CLONE_JOBS_QUEUE_URL/);
  });
});
