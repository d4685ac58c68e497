/**
 * Runs short programs (qemu-img) from a small helper process instead of this one. Why: spawn()
 * forks the caller, and a fork copies its page tables while its event loop waits, so a big
 * long-lived process (a local region with both regions and the emulators in it, a host agent)
 * loses tens of milliseconds per spawn: measured 5 ms at 0 MiB, 58 ms at 500 MiB and 130 ms at
 * 1.5 GiB held. The helper is a bare node process of a few dozen MiB, on its own core.
 *
 * A Lambda runs one small process per sandbox and spawns directly (see `useLauncher`).
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";

export interface LaunchResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** The spawn itself failed (e.g. ENOENT). */
  error?: string;
}

// CommonJS, run by `node -e`: reads one JSON request a line, answers one JSON line per request.
const helperSource = `
const { spawn } = require("node:child_process");
const out = (m) => process.stdout.write(JSON.stringify(m) + "\\n");
let env = process.env;
require("node:readline").createInterface({ input: process.stdin }).on("line", (line) => {
  const { id, cmd, args, env: changed } = JSON.parse(line);
  if (changed) env = changed;
  let child;
  try { child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] }); }
  catch (e) { return out({ id, code: null, signal: null, stdout: "", stderr: "", error: e.code || e.message }); }
  const so = [], se = [];
  let failed;
  child.stdout.on("data", (d) => so.push(d));
  child.stderr.on("data", (d) => se.push(d));
  child.on("error", (e) => { failed = e.code || e.message; });
  child.on("close", (code, signal) => out({ id, code, signal, error: failed,
    stdout: Buffer.concat(so).toString("utf8"), stderr: Buffer.concat(se).toString("utf8") }));
});
process.stdin.on("end", () => process.exit(0));
`;

type Helper = ChildProcessByStdio<Writable, Readable, null>;

let helper: Helper | undefined;
let nextId = 0;
/** The environment the helper spawns with: this process's, sent again when it changes (as spawn reads it per call). */
let sentEnv: string | undefined;
const pending = new Map<number, { resolve(r: LaunchResult): void; reject(e: Error): void }>();

/** Whether programs go through the helper: long-lived processes yes, a Lambda sandbox no. */
export const useLauncher = () =>
  process.env.PRISTINE_LAUNCHER !== "off" && !process.env.AWS_LAMBDA_FUNCTION_NAME;

function started(): Helper {
  if (helper) return helper;
  const child = spawn(process.execPath, ["-e", helperSource], { stdio: ["pipe", "pipe", "inherit"] });
  const fail = (err: Error) => {
    if (helper === child) helper = undefined;
    for (const [, p] of pending) p.reject(err);
    pending.clear();
  };
  child.on("error", fail);
  child.on("exit", (code, signal) => fail(new Error(`the launcher exited (${code ?? signal})`)));
  child.stdin.on("error", fail);
  createInterface({ input: child.stdout }).on("line", (line) => {
    const reply = JSON.parse(line) as LaunchResult & { id: number };
    const waiting = pending.get(reply.id);
    pending.delete(reply.id);
    if (pending.size === 0) idle(child);
    waiting?.resolve(reply);
  });
  idle(child);
  helper = child;
  sentEnv = JSON.stringify(process.env);
  return child;
}

/** An idle helper does not keep this process alive. */
function idle(child: Helper) {
  child.unref();
  (child.stdout as Readable & { unref?(): void }).unref?.();
  (child.stdin as Writable & { unref?(): void }).unref?.();
}

function busy(child: Helper) {
  child.ref();
  (child.stdout as Readable & { ref?(): void }).ref?.();
  (child.stdin as Writable & { ref?(): void }).ref?.();
}

/** Runs `cmd args` through the helper, its output collected. */
export function launch(cmd: string, args: string[]): Promise<LaunchResult> {
  const child = started();
  const id = nextId++;
  return new Promise<LaunchResult>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    busy(child);
    const env = JSON.stringify(process.env);
    const changed = env === sentEnv ? {} : { env: process.env };
    sentEnv = env;
    child.stdin.write(`${JSON.stringify({ id, cmd, args, ...changed })}\n`);
  });
}
