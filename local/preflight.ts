/** Checks the machine for what the local runtime needs and says exactly what to install. */
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

async function javaMajor(): Promise<number | undefined> {
  try {
    const { stderr, stdout } = await run("java", ["-version"]);
    const m = /version "(\d+)(?:\.(\d+))?/.exec(stderr || stdout);
    if (!m) return undefined;
    const major = Number(m[1]);
    return major === 1 ? Number(m[2]) : major;
  } catch {
    return undefined;
  }
}

async function has(cmd: string, args: string[]): Promise<boolean> {
  try {
    await run(cmd, args);
    return true;
  } catch {
    return false;
  }
}

/** A Debian package a tool comes from: installed by apt-get when we are root, else named for the user. */
async function ensureTool(
  tool: string,
  pkg: string,
  why: string,
  log: (line: string) => void,
): Promise<string | undefined> {
  if (await has(tool, ["--version"])) return undefined;
  const canInstall = process.getuid?.() === 0 && (await has("apt-get", ["--version"]));
  if (!canInstall) return `${tool} is needed for ${why}: sudo apt-get install ${pkg}`;
  log(`${tool} is missing: installing Debian's ${pkg} ...`);
  const update = spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
  const install = spawnSync("apt-get", ["install", "-y", "-qq", pkg], {
    stdio: "inherit",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  if (update.status !== 0 || install.status !== 0 || !(await has(tool, ["--version"])))
    return `installing ${pkg} failed; install it by hand: apt-get install ${pkg}`;
  return undefined;
}

/**
 * What the local runtime needs: Java for DynamoDB Local, qemu-img for the disks and, when desktops
 * are VMs (`vms`), qemu-system-x86_64. Missing packages are installed when run as root.
 */
export async function preflight(
  log: (line: string) => void = console.log,
  opts: { vms?: boolean } = {},
): Promise<void> {
  const problems: string[] = [];
  const java = await javaMajor();
  if (java === undefined)
    problems.push("Java 17+ is needed for DynamoDB Local: apt-get install openjdk-17-jre-headless");
  else if (java < 17)
    problems.push(
      `Java ${java} is too old for DynamoDB Local; install Java 17+ (apt-get install openjdk-17-jre-headless)`,
    );
  const tools: [string, string, string][] = [["qemu-img", "qemu-utils", "linked clones"]];
  if (opts.vms)
    tools.push(["qemu-system-x86_64", "qemu-system-x86", "desktops as VMs (or PRISTINE_HYPERVISOR=none)"]);
  for (const [tool, pkg, why] of tools) {
    const problem = await ensureTool(tool, pkg, why, log);
    if (problem) problems.push(problem);
  }
  if (problems.length > 0) {
    throw new Error(`Pristine cannot start on this machine yet:\n  - ${problems.join("\n  - ")}`);
  }
}
