/**
 * Pristine's V8 flags (shared/v8-flags.ts) do what they are set for: short-lived Buffers, as a
 * transfer makes them, no longer start full garbage collections. Two child processes make the
 * same 1600 MiB of 1 MiB Buffers, one of them after applying the flags.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const flagsModule = new URL("../../shared/v8-flags.ts", import.meta.url).href;

/** Full collections while 1600 MiB of Buffers come and go, one at a time. */
const probe = `import { PerformanceObserver, constants } from "node:perf_hooks";
import { applyV8Flags } from ${JSON.stringify(flagsModule)};
if (process.argv.includes("--apply")) applyV8Flags();
let major = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++;
}).observe({ entryTypes: ["gc"] });
let sum = 0;
for (let i = 0; i < 1600; i++) {
  const chunk = Buffer.allocUnsafeSlow(1024 * 1024);
  chunk[0] = i;
  sum += chunk[0];
  await new Promise((r) => setImmediate(r));
}
await new Promise((r) => setTimeout(r, 50));
console.log(JSON.stringify({ major, sum }));`;

async function fullCollections(apply: boolean): Promise<number> {
  const { stdout } = await run(process.execPath, [
    "--input-type=module",
    "-e",
    probe,
    "--",
    ...(apply ? ["--apply"] : []),
  ]);
  return (JSON.parse(stdout) as { major: number }).major;
}

describe("V8 flags", () => {
  it("short-lived Buffers start no full garbage collection once the flags are applied", async () => {
    const [without, withFlags] = await Promise.all([fullCollections(false), fullCollections(true)]);
    // Without them, a full collection every ~80 MiB here (every ~32 MiB of 64 KiB socket chunks);
    // with them, the few that loading the modules' own code may still bring.
    expect(without).toBeGreaterThanOrEqual(12);
    expect(withFlags).toBeLessThanOrEqual(without / 3);
  });
});
