/**
 * QEMU processes that an earlier control process left running in the run dir: a VM outlives the
 * process that started it (see qemu.ts), so a host agent that crashed or was upgraded finds its
 * VMs' QEMUs still there. This module tells which run dirs hold such a VM and ends them.
 *
 * A QEMU is taken for the VM of <runDir>/<vmId> only if the pid in that dir's pidfile is a running
 * qemu-system process whose command line passes that very pidfile (-pidfile): a pid that another
 * process took over after QEMU exited never matches. Each start() also writes owner.json, the
 * identity (pid and start time) of the control process that started the VM; a VM whose owner is
 * another process that still runs is never reclaimed.
 */
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import {
  exitedState,
  type ProcessIdentity,
  type ProcInfo,
  readProc,
  stillRuns,
  terminate,
} from "./host-process.ts";
import { type QemuPaths, vmPaths } from "./qemu-command.ts";

/** True if argv is a qemu-system process (or the configured binary) started with this pidfile. */
export function isQemuFor(argv: string[], pidfile: string, binary = "qemu-system-x86_64"): boolean {
  const program = basename(argv[0] ?? "");
  if (!program.startsWith("qemu-system-") && program !== basename(binary)) return false;
  return argv.some((arg, i) => arg === "-pidfile" && argv[i + 1] === pidfile);
}

/** The QEMU running for this run dir, if one does (by pidfile and command line, as above). */
export async function runningQemu(paths: QemuPaths, binary?: string): Promise<ProcInfo | undefined> {
  const pid = Number((await readFile(paths.pidfile, "utf8").catch(() => "")).trim());
  const proc = Number.isSafeInteger(pid) && pid > 0 ? await readProc(pid) : undefined;
  if (!proc || exitedState(proc.state) || !isQemuFor(proc.argv, paths.pidfile, binary)) return undefined;
  return proc;
}

export async function writeOwner(paths: QemuPaths, owner: ProcessIdentity): Promise<void> {
  await writeFile(paths.owner, `${JSON.stringify({ pid: owner.pid, startTicks: owner.startTicks })}\n`, {
    mode: 0o600,
  });
}

async function readOwner(paths: QemuPaths): Promise<ProcessIdentity | undefined> {
  try {
    const { pid, startTicks } = JSON.parse(await readFile(paths.owner, "utf8"));
    return Number.isSafeInteger(pid) && Number.isSafeInteger(startTicks) ? { pid, startTicks } : undefined;
  } catch {
    return undefined;
  }
}

export type Verdict = { reclaim: true } | { reclaim: false; why: string };

/**
 * Whether to end the QEMU of a run dir, given its owner (undefined: no owner.json, e.g. a VM
 * started before owners were written), whether that owner still runs, and this process. A live
 * owner that is this very process is an earlier adapter instance here, dropped without stopping
 * its VMs: reclaimed like a dead one.
 */
export function judge(
  owner: ProcessIdentity | undefined,
  ownerRuns: boolean,
  self: ProcessIdentity,
): Verdict {
  if (!owner || !ownerRuns) return { reclaim: true };
  if (owner.pid === self.pid && owner.startTicks === self.startTicks) return { reclaim: true };
  return { reclaim: false, why: `its control process (pid ${owner.pid}) still runs` };
}

export interface Leftover {
  vmId: string;
  dir: string;
  qemu: ProcInfo;
}

/**
 * The VMs of runDir whose QEMU runs and may be reclaimed, leaving out those `ours` names (run by
 * the caller) and those whose owner still runs elsewhere (in `skipped`, with why).
 */
export async function findLeftovers(opts: {
  runDir: string;
  binary?: string;
  self: ProcessIdentity;
  ours: (vmId: string) => boolean;
}): Promise<{ leftovers: Leftover[]; skipped: { vmId: string; why: string }[] }> {
  const entries = await readdir(opts.runDir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return [];
    throw err;
  });
  const leftovers: Leftover[] = [];
  const skipped: { vmId: string; why: string }[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || opts.ours(entry.name)) continue;
    const dir = join(opts.runDir, entry.name);
    const paths = vmPaths(dir);
    const qemu = await runningQemu(paths, opts.binary);
    if (!qemu) continue;
    const owner = await readOwner(paths);
    const ownerRuns = owner ? stillRuns(owner, await readProc(owner.pid)) : false;
    const verdict = judge(owner, ownerRuns, opts.self);
    if (verdict.reclaim) leftovers.push({ vmId: entry.name, dir, qemu });
    else skipped.push({ vmId: entry.name, why: verdict.why });
  }
  return { leftovers, skipped };
}

/**
 * Ends a leftover QEMU (SIGTERM: QEMU flushes its images and exits; SIGKILL after graceMs) and
 * removes its run dir. Answers how it ended.
 */
export async function endLeftover(
  leftover: Leftover,
  opts: { graceMs: number; killWaitMs?: number },
): Promise<"SIGTERM" | "SIGKILL" | "gone"> {
  const how = await terminate(leftover.qemu, opts);
  await rm(leftover.dir, { recursive: true, force: true });
  return how;
}
