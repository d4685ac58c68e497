/**
 * A small QMP client over a unix socket: the greeting, qmp_capabilities, commands matched to their
 * replies by id, and asynchronous events. Every call has a deadline.
 */
import { connect, type Socket } from "node:net";

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  readonly errorClass: string;
  constructor(command: string, errorClass: string, desc: string) {
    super(`QMP ${command}: ${desc} (${errorClass})`);
    this.name = "QmpError";
    this.errorClass = errorClass;
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Calls each listener in turn; one that throws does not stop the others. */
function emit<A extends unknown[]>(listeners: Set<(...args: A) => void>, ...args: A) {
  for (const l of [...listeners]) {
    try {
      l(...args);
    } catch {
      // A listener's bug is not the connection's problem.
    }
  }
}

/** Splits a byte stream into lines; the last, unterminated piece waits for more. */
export function lineReader(onLine: (line: string) => void): (chunk: Buffer) => void {
  let buffered = "";
  return (chunk) => {
    buffered += chunk.toString("utf8");
    let at = buffered.indexOf("\n");
    while (at >= 0) {
      const line = buffered.slice(0, at).replace(/\r$/, "");
      buffered = buffered.slice(at + 1);
      if (line.trim()) onLine(line);
      at = buffered.indexOf("\n");
    }
  };
}

/**
 * Connects to a unix socket that may not exist yet (a process still starting), retrying until
 * the deadline; `giveUp` returns a reason to stop early (e.g. the process exited).
 */
export async function connectUnix(
  path: string,
  deadline: number,
  giveUp: () => string | undefined = () => undefined,
): Promise<Socket> {
  for (;;) {
    const socket = await new Promise<Socket | Error>((resolve) => {
      const s = connect(path);
      s.once("connect", () => {
        s.removeAllListeners("error");
        resolve(s);
      });
      s.once("error", (err) => resolve(err));
    });
    if (!(socket instanceof Error)) return socket;
    const code = (socket as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" && code !== "ECONNREFUSED") throw socket;
    const reason = giveUp();
    if (reason) throw new Error(`cannot connect to ${path}: ${reason}`);
    if (Date.now() > deadline) throw new Error(`cannot connect to ${path}: timed out (${code})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export class QmpClient {
  readonly version: string;
  private readonly socket: Socket;
  private readonly pending = new Map<string, Pending>();
  private readonly eventListeners = new Set<(e: QmpEvent) => void>();
  private readonly closeListeners = new Set<() => void>();
  private nextId = 1;
  private closed = false;

  private constructor(socket: Socket, version: string) {
    this.socket = socket;
    this.version = version;
  }

  /** Connects, reads the greeting and leaves capabilities negotiation mode. */
  static async connect(
    path: string,
    opts: { timeoutMs: number; giveUp?: () => string | undefined },
  ): Promise<QmpClient> {
    const deadline = Date.now() + opts.timeoutMs;
    const socket = await connectUnix(path, deadline, opts.giveUp);
    const greeting = await new Promise<{ QMP?: { version?: { qemu?: Record<string, number> } } }>(
      (resolve, reject) => {
        const timer = setTimeout(
          () => fail(new Error(`no QMP greeting on ${path}`)),
          Math.max(0, deadline - Date.now()),
        );
        const fail = (err: Error) => {
          clearTimeout(timer);
          socket.destroy();
          reject(err);
        };
        const read = lineReader((line) => {
          clearTimeout(timer);
          socket.off("data", read);
          socket.off("error", fail);
          socket.off("close", closed);
          try {
            resolve(JSON.parse(line));
          } catch {
            fail(new Error(`not a QMP greeting: ${line.slice(0, 200)}`));
          }
        });
        const closed = () => fail(new Error(`QMP socket ${path} closed before its greeting`));
        socket.on("data", read);
        socket.once("error", fail);
        socket.once("close", closed);
      },
    );
    if (!greeting.QMP) {
      socket.destroy();
      throw new Error(`not a QMP greeting on ${path}`);
    }
    const v = greeting.QMP.version?.qemu;
    const client = new QmpClient(socket, v ? `${v.major}.${v.minor}.${v.micro}` : "unknown");
    client.listen();
    await client.execute("qmp_capabilities", undefined, { timeoutMs: Math.max(1000, deadline - Date.now()) });
    return client;
  }

  private listen() {
    this.socket.on(
      "data",
      lineReader((line) => this.onLine(line)),
    );
    this.socket.on("error", () => {
      // "close" follows and fails what is pending.
    });
    this.socket.on("close", () => {
      this.closed = true;
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new Error(`QMP ${p.command}: connection closed (QEMU exited?)`));
        this.pending.delete(id);
      }
      emit(this.closeListeners);
    });
  }

  private onLine(line: string) {
    let msg: { id?: string; return?: unknown; error?: { class: string; desc: string } } & Partial<QmpEvent>;
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    if (msg.event) {
      emit(this.eventListeners, msg as QmpEvent);
      return;
    }
    const p = msg.id === undefined ? undefined : this.pending.get(msg.id);
    if (!p || msg.id === undefined) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.error) p.reject(new QmpError(p.command, msg.error.class, msg.error.desc));
    else p.resolve(msg.return);
  }

  execute<T = unknown>(command: string, args?: object, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`QMP ${command}: connection closed`));
    const id = `pristine-${this.nextId++}`;
    const timeoutMs = opts.timeoutMs ?? 30_000;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`QMP ${command}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(`${JSON.stringify({ execute: command, arguments: args, id })}\n`);
    });
  }

  onEvent(listener: (e: QmpEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  onClose(listener: () => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /**
   * Resolves with the first event that matches, or rejects at the deadline. Subscribe before
   * sending the command that causes the event, so that it cannot be missed.
   */
  waitForEvent(match: (e: QmpEvent) => boolean, timeoutMs: number, what: string) {
    let off = () => {};
    let timer: NodeJS.Timeout | undefined;
    const promise = new Promise<QmpEvent>((resolve, reject) => {
      timer = setTimeout(() => {
        off();
        reject(new Error(`QMP: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      off = this.onEvent((e) => {
        if (!match(e)) return;
        off();
        clearTimeout(timer);
        resolve(e);
      });
    });
    const cancel = () => {
      off();
      clearTimeout(timer);
    };
    return { promise, cancel };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close() {
    this.socket.end();
    this.socket.destroy();
  }
}
