/** Helpers for tests that drive real VMs through the Hypervisor port: every wait has a deadline. */
import type { Duplex } from "node:stream";
import { PNG } from "pngjs";
import type { ExitInfo, Hypervisor } from "../../shared/ports/hypervisor.ts";

/** Polls check() until it returns a value, or throws at the deadline. */
export async function pollUntil<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  what: string,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

interface Received<T> {
  vmId: string;
  value: T;
  at: number;
}

/**
 * Everything the hypervisor reported (agent messages, exits), kept in order, so a test can wait
 * for something that may already have happened: mark() before the action, waitFor(since) after.
 */
export class Recorder {
  readonly messages: Received<{ type?: string } & Record<string, unknown>>[] = [];
  readonly exits: Received<ExitInfo>[] = [];
  private readonly offs: (() => void)[];

  constructor(hv: Hypervisor) {
    this.offs = [
      hv.onMessage((vmId, value) => {
        this.messages.push({ vmId, value: value as { type?: string }, at: Date.now() });
      }),
      hv.onExit((vmId, value) => {
        this.exits.push({ vmId, value, at: Date.now() });
      }),
    ];
  }

  mark(): number {
    return this.messages.length;
  }

  async waitFor(vmId: string, type: string, timeoutMs: number, since = 0) {
    return pollUntil(
      () => this.messages.slice(since).find((m) => m.vmId === vmId && m.value.type === type),
      timeoutMs,
      `"${type}" from the agent of ${vmId}`,
    );
  }

  async waitForExit(vmId: string, timeoutMs: number) {
    return pollUntil(() => this.exits.find((e) => e.vmId === vmId), timeoutMs, `${vmId} to exit`);
  }

  close() {
    for (const off of this.offs) off();
  }
}

/** A user at the serial console: types lines, reads what the shell prints. */
export class ConsoleSession {
  private readonly stream: Duplex;
  private output = "";
  private marks = 0;

  constructor(stream: Duplex) {
    this.stream = stream;
    stream.on("data", (chunk: Buffer) => {
      this.output += chunk.toString("utf8");
    });
    stream.on("error", () => {});
  }

  /** Everything printed since offset (console output uses \r\n). */
  since(offset: number): string {
    return this.output.slice(offset).replaceAll("\r", "");
  }

  get length(): number {
    return this.output.length;
  }

  type(line: string) {
    this.stream.write(`${line}\n`);
  }

  /**
   * Types a command line and waits for it to finish; returns its exit status and what was printed.
   * The end marker is split by quotes in what is typed, so the terminal's echo never matches it.
   */
  async run(command: string, timeoutMs = 20_000): Promise<{ status: number; output: string }> {
    const id = ++this.marks;
    const start = this.output.length;
    this.type(`${command}; echo "=DO""NE${id}:$?="`);
    const pattern = new RegExp(`=DONE${id}:(\\d+)=`);
    const m = await pollUntil(() => pattern.exec(this.since(start)) ?? undefined, timeoutMs, `"${command}"`);
    return { status: Number(m[1]), output: this.since(start) };
  }

  close() {
    this.stream.end();
    this.stream.destroy();
  }
}

export interface Region {
  x: number;
  y: number;
  width: number;
  height: number;
}

export function decodePng(png: Buffer): PNG {
  return PNG.sync.read(png);
}

/** How many pixels of the region differ between two screenshots of the same size. */
export function differingPixels(a: PNG, b: PNG, region: Region): number {
  if (a.width !== b.width || a.height !== b.height) {
    throw new Error(`screens differ in size: ${a.width}x${a.height} vs ${b.width}x${b.height}`);
  }
  let n = 0;
  for (let y = region.y; y < Math.min(a.height, region.y + region.height); y++) {
    for (let x = region.x; x < Math.min(a.width, region.x + region.width); x++) {
      const i = (y * a.width + x) * 4;
      if (a.data[i] !== b.data[i] || a.data[i + 1] !== b.data[i + 1] || a.data[i + 2] !== b.data[i + 2]) n++;
    }
  }
  return n;
}
