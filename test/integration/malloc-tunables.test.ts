/**
 * The glibc malloc tunables the npm scripts and the local emulator's process run with
 * (package.json's config.glibcTunables, local/emulators.ts) do what they are set for: a transfer's
 * Buffers reuse memory already faulted in instead of faulting in new pages for every MiB moved.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { mallocTunables, startFauxqsProcess } from "../../local/emulators.ts";

const run = promisify(execFile);

/** Page faults while 40 bodies of 8 MiB are PUT over loopback HTTP and gathered, as S3 does. */
const probe = `import { createServer, request } from "node:http";
const body = Buffer.alloc(8 << 20, 7);
const server = createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  res.end(String(Buffer.concat(chunks).length));
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const { port } = server.address();
const before = process.resourceUsage().minorPageFault;
for (let i = 0; i < 40; i++)
  await new Promise((resolve, reject) => {
    const put = request({ host: "127.0.0.1", port, method: "PUT" }, (res) => res.resume().on("end", resolve));
    put.on("error", reject);
    put.end(body);
  });
console.log(JSON.stringify({ faults: process.resourceUsage().minorPageFault - before }));
server.close();`;

async function pageFaults(tunables: string): Promise<number> {
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", probe], {
    env: { ...process.env, GLIBC_TUNABLES: tunables },
  });
  return (JSON.parse(stdout) as { faults: number }).faults;
}

/** Whether malloc's madvise for huge pages can take effect here (not with THP "never"). */
function hugePagesOnRequest(): boolean {
  try {
    return !readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8").includes("[never]");
  } catch {
    return false;
  }
}

describe("glibc malloc tunables", () => {
  it("a process moving 320 MiB over HTTP faults in a fraction of the pages with them", async () => {
    const tunables = mallocTunables();
    expect(tunables).toContain("glibc.malloc.hugetlb=1");
    const [without, tuned] = await Promise.all([pageFaults(""), pageFaults(tunables)]);
    // Here: 52,000-58,000 faults without them (a new page for most of the 320 MiB moved),
    // 1,900-2,300 with them. Without huge pages the thresholds alone halve it.
    expect(without).toBeGreaterThan(20_000);
    expect(tuned).toBeLessThanOrEqual(without / (hugePagesOnRequest() ? 5 : 1.5));
  });

  it("the npm scripts that run Pristine's processes and the local fauxqs process carry them", async () => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      scripts: Record<string, string>;
    };
    for (const script of ["start", "test", "bench"])
      expect(pkg.scripts[script], script).toMatch(
        /^GLIBC_TUNABLES=\$\{GLIBC_TUNABLES-\$npm_package_config_glibcTunables\} /,
      );
    const fauxqs = await startFauxqsProcess();
    try {
      const { stdout } = await run("pgrep", ["-P", String(process.pid), "-f", "startFauxqs"]);
      const pid = stdout.trim().split("\n")[0];
      // glibc parses the tunables in place (a NUL where each ':' was) in the process's own copy.
      const environ = readFileSync(`/proc/${pid}/environ`, "utf8").replaceAll("\0", ":");
      expect(environ).toContain(`:GLIBC_TUNABLES=${mallocTunables()}:`);
    } finally {
      await fauxqs.stop();
    }
  });
});
