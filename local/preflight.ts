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

export async function preflight(log: (line: string) => void = console.log): Promise<void> {
  const problems: string[] = [];
  const java = await javaMajor();
  if (java === undefined)
    problems.push("Java 17+ is needed for DynamoDB Local: apt-get install openjdk-17-jre-headless");
  else if (java < 17)
    problems.push(
      `Java ${java} is too old for DynamoDB Local; install Java 17+ (apt-get install openjdk-17-jre-headless)`,
    );

  if (!(await has("qemu-img", ["--version"]))) {
    const canInstall = process.getuid?.() === 0 && (await has("apt-get", ["--version"]));
    if (canInstall) {
      log("qemu-img is missing: installing Debian's qemu-utils ...");
      const update = spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
      const install = spawnSync("apt-get", ["install", "-y", "-qq", "qemu-utils"], {
        stdio: "inherit",
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      });
      if (update.status !== 0 || install.status !== 0 || !(await has("qemu-img", ["--version"]))) {
        problems.push("installing qemu-utils failed; install it by hand: apt-get install qemu-utils");
      }
    } else {
      problems.push(
        "qemu-img is needed for linked clones: sudo apt-get install qemu-utils (macOS: brew install qemu)",
      );
    }
  }
  if (problems.length > 0) {
    throw new Error(`Pristine cannot start on this machine yet:\n  - ${problems.join("\n  - ")}`);
  }
}
