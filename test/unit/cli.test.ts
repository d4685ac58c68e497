/** The CLI's pure parts: exit codes, problem lines, the config file's permission check, progress of waits. */
import { CommanderError } from "commander";
import { describe, expect, it } from "vitest";
import { drillProgress } from "../../cli/commands/dr.ts";
import { publishProgress } from "../../cli/commands/images.ts";
import { type PoolView, provisioningProgress, recomposeProgress } from "../../cli/commands/pools.ts";
import { maskKey, resolveProfile, unsafePermissions } from "../../cli/config.ts";
import {
  ApiError,
  errorLine,
  exitCodeFor,
  formatProblem,
  problemSlug,
  Unreachable,
  UsageError,
  WaitFailed,
} from "../../cli/errors.ts";
import { emptyStateCounts } from "../../shared/domain/desktop-state.ts";
import type { Drill } from "../../shared/domain/dr-model.ts";

describe("exit codes", () => {
  it.each([
    [new UsageError("bad"), 2],
    [new CommanderError(1, "commander.unknownCommand", "unknown command"), 2],
    [new CommanderError(1, "commander.invalidArgument", "bad value"), 2],
    [new CommanderError(1, "commander.help", "(outputHelp)"), 2],
    [new CommanderError(0, "commander.helpDisplayed", "(outputHelp)"), 0],
    [new CommanderError(0, "commander.version", "0.1.0"), 0],
    [new ApiError(400, undefined), 3],
    [new ApiError(404, undefined), 3],
    [new ApiError(409, undefined), 3],
    [new ApiError(499, undefined), 3],
    [new ApiError(500, undefined), 4],
    [new ApiError(503, undefined), 4],
    [new Unreachable("down"), 4],
    [new WaitFailed("FAILED"), 5],
    [
      Object.assign(new Error("EACCES: permission denied, open 'x.png'"), {
        code: "EACCES",
        syscall: "open",
      }),
      2,
    ],
    [new Error("a bug"), 4],
  ])("%s -> %i", (err, code) => {
    expect(exitCodeFor(err)).toBe(code);
  });
});

describe("problem lines", () => {
  it("status, slug and detail on one line", () => {
    const problem = {
      type: "https://pristine.dev/problems/not-found",
      title: "Not found",
      status: 404,
      detail: "pool p-123 does not exist",
    };
    expect(formatProblem(404, problem)).toBe("404 not-found: pool p-123 does not exist");
    expect(errorLine(new ApiError(404, problem))).toBe("error: 404 not-found: pool p-123 does not exist");
  });

  it("names the field when the detail does not", () => {
    const problem = {
      type: "https://pristine.dev/problems/validation-error",
      detail: "too small",
      field: "body.size",
    };
    expect(formatProblem(400, problem)).toBe("400 validation-error: too small (field body.size)");
    expect(formatProblem(400, { ...problem, detail: "body.size: too small" })).toBe(
      "400 validation-error: body.size: too small",
    );
  });

  it("falls back to the title, then the status text, for bodies that are not problems", () => {
    expect(formatProblem(409, { title: "Pool changed" })).toBe("409: Pool changed");
    expect(formatProblem(502, undefined, "Bad Gateway")).toBe("502: Bad Gateway");
    expect(formatProblem(500, undefined)).toBe("500: no detail given");
  });

  it("keeps a multi-line detail on one line", () => {
    expect(formatProblem(400, { detail: "first\n  second" })).toBe("400: first second");
    expect(errorLine(new Error("error: a\nb"))).toBe("error: a b");
  });

  it("takes the slug from the type URI", () => {
    expect(problemSlug("https://pristine.dev/problems/try-again")).toBe("try-again");
    expect(problemSlug("about:blank")).toBeUndefined();
    expect(problemSlug(undefined)).toBeUndefined();
  });
});

describe("the config file's permissions", () => {
  const me = 1000;
  it("accepts owner-only files", () => {
    expect(unsafePermissions("/c.json", { mode: 0o100600, uid: me }, me)).toBeUndefined();
    expect(unsafePermissions("/c.json", { mode: 0o100400, uid: me }, me)).toBeUndefined();
  });

  it.each([0o644, 0o640, 0o604, 0o660, 0o666, 0o602, 0o610])("refuses mode %o", (mode) => {
    const why = unsafePermissions("/c.json", { mode: 0o100000 | mode, uid: me }, me);
    expect(why).toContain(`permissions 0${mode.toString(8)}`);
    expect(why).toContain("chmod 600 /c.json");
  });

  it("refuses another user's file", () => {
    expect(unsafePermissions("/c.json", { mode: 0o100600, uid: 0 }, me)).toContain("belongs to another user");
  });

  it("never shows a key in full", () => {
    const key = "prs_71Alymr7QGXKm3VjL9k0RlkQzx6rRboPO9FVn_Mm0dk";
    expect(maskKey(key)).toBe("****m0dk");
    expect(maskKey("short")).toBe("****");
  });
});

describe("the profile a command uses", () => {
  const config = {
    defaultProfile: "op",
    profiles: {
      op: { url: "http://a/", key: "op-key" },
      acme: { url: "http://b", key: "acme-key", drUrl: "http://b-dr/" },
    },
  };
  it("is --profile, else the default, with the environment on top", () => {
    expect(resolveProfile(config, "acme", {})).toEqual({
      url: "http://b",
      key: "acme-key",
      drUrl: "http://b-dr",
    });
    expect(resolveProfile(config, undefined, {})).toEqual({ url: "http://a", key: "op-key" });
    expect(resolveProfile(config, "acme", { PRISTINE_API_KEY: "env-key" }).key).toBe("env-key");
    expect(
      resolveProfile({ profiles: {} }, undefined, { PRISTINE_API_URL: "http://e", PRISTINE_API_KEY: "k" }),
    ).toEqual({ url: "http://e", key: "k" });
  });

  it("is a usage error when unknown or incomplete", () => {
    expect(() => resolveProfile(config, "nope", {})).toThrow(UsageError);
    expect(() => resolveProfile({ profiles: {} }, undefined, { PRISTINE_API_URL: "http://e" })).toThrow(
      /no API URL and key/,
    );
  });
});

describe("progress of --wait", () => {
  const pool = (counts: Partial<ReturnType<typeof emptyStateCounts>>, extra: Partial<PoolView> = {}) =>
    ({
      poolId: "p",
      size: 3,
      state: "ACTIVE",
      desktopCounts: { ...emptyStateCounts(), ...counts },
      ...extra,
    }) as PoolView;

  it("provisioning: available of size, done when all are in service, failed on ERROR", () => {
    expect(provisioningProgress(pool({ PROVISIONING: 2, AVAILABLE: 1 }))).toMatchObject({
      value: 1,
      total: 3,
      done: false,
      status: "PROVISIONING 2, AVAILABLE 1",
    });
    expect(provisioningProgress(pool({ AVAILABLE: 2, ASSIGNED: 1 }))).toMatchObject({ value: 3, done: true });
    expect(provisioningProgress(pool({ AVAILABLE: 2, ERROR: 1 })).failed).toContain("1 desktop(s) in ERROR");
    expect(provisioningProgress(pool({ AVAILABLE: 3 }, { state: "DELETING" })).failed).toContain("deleted");
  });

  it("recompose: done once nothing is pending, failed when a desktop failed", () => {
    const r = { fromVersion: 1, toVersion: 2, startedAt: "t" };
    expect(
      recomposeProgress(pool({}, { recompose: { ...r, done: 1, pending: 2, failed: 0 } })),
    ).toMatchObject({
      value: 1,
      total: 3,
      done: false,
    });
    expect(recomposeProgress(pool({}, { recompose: { ...r, done: 3, pending: 0, failed: 0 } })).done).toBe(
      true,
    );
    expect(
      recomposeProgress(pool({}, { recompose: { ...r, done: 2, pending: 0, failed: 1 } })).failed,
    ).toBeDefined();
    expect(recomposeProgress(pool({})).failed).toBeDefined();
  });

  it("publishing: READY is done, FAILED fails with the reason", () => {
    const image = (state: string, error?: string) =>
      ({ versions: [{ version: 1, state, ...(error ? { error } : {}) }] }) as never;
    expect(publishProgress(image("PUBLISHING"), 1)).toMatchObject({ value: 0, done: false });
    expect(publishProgress(image("READY"), 1)).toMatchObject({ value: 1, total: 1, done: true });
    expect(publishProgress(image("FAILED", "not a disk"), 1).failed).toBe("version 1: not a disk");
  });

  it("drills: final once no longer RUNNING; FAILED fails", () => {
    const drill = (state: Drill["state"], phase: Drill["phase"]) =>
      ({ drillId: "d", state, phase, pools: [], startedAt: "t", tenantId: "t" }) as Drill;
    expect(drillProgress(drill("RUNNING", "LOGGING_ON"))).toMatchObject({ value: 3, done: false });
    expect(drillProgress(drill("RUNNING", "DONE")).done).toBe(false);
    expect(drillProgress(drill("SUCCEEDED", "DONE"))).toMatchObject({ value: 7, total: 7, done: true });
    expect(drillProgress(drill("FAILED", "DONE")).failed).toContain("drill d");
  });
});

describe("a pool's sizing options", () => {
  it("become the pool fields they name, and only those given", async () => {
    const { sizingFrom } = await import("../../cli/commands/pool-sizing.ts");
    expect(sizingFrom({ minSize: 5, maxSize: 30, spare: 2, poweredOnSpare: 1, ticketTimeout: 60 })).toEqual({
      minSize: 5,
      maxSize: 30,
      spare: 2,
      poweredOnSpare: 1,
      ticketTimeoutSeconds: 60,
    });
    expect(sizingFrom({ idleSeconds: 90, image: "img-1" })).toEqual({ idleSeconds: 90 });
    expect(sizingFrom({})).toEqual({});
  });
});
