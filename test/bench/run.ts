/** `npm run bench [-- name...]`: runs the named benchmarks (all when none is named). */
import type { WorkerName } from "../../local/region.ts";
import { benchBoot } from "./boot.ts";
import { benchClones } from "./clones.ts";
import { benchDr } from "./dr.ts";
import { startBenchEnv } from "./env.ts";
import { benchLogon } from "./logon.ts";
import { benchStorm } from "./storm.ts";

const benches: Record<string, typeof benchLogon> = {
  logon: benchLogon,
  clones: benchClones,
  dr: benchDr,
  boot: benchBoot,
  storm: benchStorm,
};
/**
 * Benches whose workers run as their own process, as each function does on Lambda: in a storm, an
 * API and clone workers sharing one event loop wait on each other, which no deployment does.
 */
const apart: Record<string, WorkerName[]> = { storm: ["clone-worker"] };
const names = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const selected = names.length > 0 ? names : Object.keys(benches);
const unknown = selected.filter((n) => !benches[n]);
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(", ")}; known: ${Object.keys(benches).join(", ")}`);
  process.exit(2);
}
for (const name of selected) {
  const env = await startBenchEnv(apart[name] ? { workersApart: apart[name] } : {});
  try {
    await benches[name]?.(env);
  } finally {
    await env.stop();
  }
}
