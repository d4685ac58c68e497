import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Runs qemu-img; a failure carries qemu-img's own message, which names the problem precisely. */
export async function qemuImg(args: string[]): Promise<string> {
  try {
    const { stdout } = await run("qemu-img", args, { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string; code?: string };
    if (e.code === "ENOENT")
      throw new Error("qemu-img is not installed (Debian/Ubuntu: apt-get install qemu-utils)");
    throw new Error(`qemu-img ${args[0]} failed: ${(e.stderr || e.message).trim()}`);
  }
}

export interface QemuImageInfo {
  format: string;
  "virtual-size": number;
  "actual-size"?: number;
  "backing-filename"?: string;
  "full-backing-filename"?: string;
}

export async function qemuInfo(path: string): Promise<QemuImageInfo> {
  return JSON.parse(await qemuImg(["info", "--output=json", "-U", path])) as QemuImageInfo;
}
