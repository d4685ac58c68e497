/**
 * Processes of this host seen through /proc, for ones we did not spawn (and so cannot wait for):
 * who a pid is (its command line and start time), whether it still runs, and ending it with
 * SIGTERM, then SIGKILL after a grace period.
 *
 * A pid alone does not name a process: once it exits its number can be given to another. A pid
 * together with its start time (field 22 of /proc/<pid>/stat, clock ticks since boot) does, so
 * every signal sent here first checks that the start time is still the one seen.
 */
import { readFile } from "node:fs/promises";

export interface ProcessIdentity {
  pid: number;
  /** Start time of the process, in clock ticks since boot. */
  startTicks: number;
}

export interface ProcInfo extends ProcessIdentity {
  /** R, S, D, Z (zombie: exited, not yet reaped by its parent), ... */
  state: string;
  argv: string[];
}

/** State and start time from the text of /proc/<pid>/stat; the command name may hold ") ". */
export function parseProcStat(text: string): { state: string; startTicks: number } {
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const state = fields[0] ?? "";
  const startTicks = Number(fields[19]);
  if (!/^[A-Za-z]$/.test(state) || !Number.isSafeInteger(startTicks)) {
    throw new Error(`not a /proc/<pid>/stat line: ${text.slice(0, 200)}`);
  }
  return { state, startTicks };
}

/** The arguments of /proc/<pid>/cmdline (NUL-separated, NUL-terminated). */
export function parseCmdline(text: string): string[] {
  const argv = text.split("\0");
  if (argv.at(-1) === "") argv.pop();
  return argv;
}

/** What /proc says of a pid, or undefined if there is no such process. */
export async function readProc(pid: number): Promise<ProcInfo | undefined> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    const [stat, cmdline] = await Promise.all([
      readFile(`/proc/${pid}/stat`, "utf8"),
      readFile(`/proc/${pid}/cmdline`, "utf8"),
    ]);
    return { pid, ...parseProcStat(stat), argv: parseCmdline(cmdline) };
  } catch {
    return undefined;
  }
}

/** A zombie (Z) or dead (X) process has exited; only its parent has yet to reap it. */
export const exitedState = (state: string) => state === "Z" || state === "X";

/** True while the process still runs: same pid and start time, and not a zombie. */
export function stillRuns(seen: ProcessIdentity, now: ProcInfo | undefined): boolean {
  return now !== undefined && now.startTicks === seen.startTicks && !exitedState(now.state);
}

export async function isRunning(process: ProcessIdentity): Promise<boolean> {
  return stillRuns(process, await readProc(process.pid));
}

let self: Promise<ProcessIdentity> | undefined;

/** This process. */
export function selfIdentity(): Promise<ProcessIdentity> {
  self ??= readFile("/proc/self/stat", "utf8").then((text) => ({
    pid: process.pid,
    startTicks: parseProcStat(text).startTicks,
  }));
  return self;
}

/** Polls until the process no longer runs; false at the deadline. */
async function ended(process: ProcessIdentity, timeoutMs: number, everyMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await isRunning(process))) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Sends a signal if the process is still the one seen; false if it was already gone. */
async function signal(target: ProcessIdentity, sig: NodeJS.Signals): Promise<boolean> {
  if (!(await isRunning(target))) return false;
  try {
    process.kill(target.pid, sig);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
}

/**
 * Ends a process that is not our child: SIGTERM, SIGKILL if it still runs after graceMs. Answers
 * the signal that ended it ("gone" if it was gone before any was sent); throws if it still runs
 * killWaitMs after SIGKILL (e.g. stuck in the kernel).
 */
export async function terminate(
  target: ProcessIdentity,
  opts: { graceMs: number; killWaitMs?: number; pollMs?: number },
): Promise<"SIGTERM" | "SIGKILL" | "gone"> {
  const pollMs = opts.pollMs ?? 25;
  if (!(await signal(target, "SIGTERM"))) return "gone";
  if (await ended(target, opts.graceMs, pollMs)) return "SIGTERM";
  await signal(target, "SIGKILL");
  const killWaitMs = opts.killWaitMs ?? 10_000;
  if (await ended(target, killWaitMs, pollMs)) return "SIGKILL";
  throw new Error(`pid ${target.pid} still runs ${killWaitMs} ms after SIGKILL`);
}
