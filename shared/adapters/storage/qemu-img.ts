import { spawn } from "node:child_process";
import { launch, useLauncher } from "./launcher.ts";

const notInstalled = () => new Error("qemu-img is not installed (Debian/Ubuntu: apt-get install qemu-utils)");

/**
 * Runs qemu-img; a failure carries qemu-img's own message, which names the problem precisely (it
 * belongs in logs, not in answers to tenants). `openFile` is handed to qemu-img as its fd 3
 * (`/dev/fd/3`), so it reads exactly the file this process opened.
 */
export function qemuImg(args: string[], opts: { openFile?: number } = {}): Promise<string> {
  // A file this process opened cannot be handed over: such calls spawn here.
  if (opts.openFile === undefined && useLauncher())
    return launch("qemu-img", args).then((r) => {
      if (r.error === "ENOENT") throw notInstalled();
      if (r.code === 0) return r.stdout;
      const why = r.stderr.trim() || r.error || `exit ${r.code ?? r.signal}`;
      throw new Error(`qemu-img ${args[0]} failed: ${why}`);
    });
  return new Promise((resolve, reject) => {
    const stdio: ("ignore" | "pipe" | number)[] = ["ignore", "pipe", "pipe"];
    if (opts.openFile !== undefined) stdio.push(opts.openFile);
    const child = spawn("qemu-img", args, { stdio });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on("data", (d: Buffer) => out.push(d));
    child.stderr?.on("data", (d: Buffer) => err.push(d));
    child.on("error", (e: NodeJS.ErrnoException) => reject(e.code === "ENOENT" ? notInstalled() : e));
    child.on("close", (code, signal) => {
      if (code === 0) return resolve(Buffer.concat(out).toString("utf8"));
      const why = Buffer.concat(err).toString("utf8").trim() || `exit ${code ?? signal}`;
      reject(new Error(`qemu-img ${args[0]} failed: ${why}`));
    });
  });
}

export interface QemuImageInfo {
  format: string;
  "virtual-size": number;
  "actual-size"?: number;
  "backing-filename"?: string;
  "full-backing-filename"?: string;
  "format-specific"?: { type: string; data?: Record<string, unknown> };
}

export async function qemuInfo(path: string, opts: { openFile?: number } = {}): Promise<QemuImageInfo> {
  return JSON.parse(await qemuImg(["info", "--output=json", "-U", path], opts)) as QemuImageInfo;
}
