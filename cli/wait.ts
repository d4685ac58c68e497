/**
 * `--wait`: polls until the work is done, failed or out of time, and shows progress on stderr: a
 * bar on a terminal, one plain line per change otherwise (logs, CI), nothing on stdout.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { SingleBar } from "cli-progress";
import { oneLine, WaitFailed } from "./errors.ts";

export interface Progress {
  value: number;
  total: number;
  /** What the work is at, in the domain's words (a state, a phase). */
  status: string;
  done: boolean;
  /** Set when the work failed: why. */
  failed?: string;
}

export interface WaitOptions {
  /** What is awaited, for the progress line and the error ("pool p-1 provisioning"). */
  what: string;
  timeoutSeconds: number;
  pollMs?: number;
}

const defaultPollMs = 500;

/** Polls `read` until its progress is done (returns the last answer) or failed / out of time (WaitFailed). */
export async function waitFor<T>(
  options: WaitOptions,
  read: () => Promise<T>,
  progressOf: (answer: T) => Progress,
): Promise<T> {
  const deadline = Date.now() + options.timeoutSeconds * 1000;
  const display = progressDisplay(options.what);
  try {
    for (;;) {
      const answer = await read();
      const progress = progressOf(answer);
      display.show(progress);
      if (progress.failed) throw new WaitFailed(`${options.what} failed: ${oneLine(progress.failed)}`);
      if (progress.done) return answer;
      if (Date.now() >= deadline)
        throw new WaitFailed(
          `timed out after ${options.timeoutSeconds} s waiting for ${options.what} (at ${progress.value}/${progress.total} ${progress.status})`,
        );
      await sleep(Math.max(0, Math.min(options.pollMs ?? defaultPollMs, deadline - Date.now())));
    }
  } finally {
    display.stop();
  }
}

interface Display {
  show(progress: Progress): void;
  stop(): void;
}

function progressDisplay(what: string): Display {
  if (process.stderr.isTTY) {
    const bar = new SingleBar({
      stream: process.stderr,
      format: `${what} [{bar}] {value}/{total} {status}`,
      hideCursor: true,
      clearOnComplete: false,
    });
    let started = false;
    return {
      show: (p) => {
        if (!started) bar.start(p.total, p.value, { status: p.status });
        started = true;
        bar.setTotal(p.total);
        bar.update(p.value, { status: p.status });
      },
      stop: () => {
        if (started) bar.stop();
      },
    };
  }
  let last = "";
  return {
    show: (p) => {
      const line = `${what}: ${p.value}/${p.total} ${p.status}`;
      if (line !== last) process.stderr.write(`${line}\n`);
      last = line;
    },
    stop: () => {},
  };
}

export const defaultTimeoutSeconds = 600;
