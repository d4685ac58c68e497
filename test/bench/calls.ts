/**
 * Calls a region makes to DynamoDB and SQS, counted by command through each client's middleware
 * stack (the DynamoDB document client shares its client's stack): what a change costs the
 * emulators, counted rather than guessed.
 */
import { readFile } from "node:fs/promises";
import type { Region } from "../../local/region.ts";

type Counts = Map<string, number>;

interface Stack {
  middlewareStack: {
    add(
      mw: (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) => typeof next,
      opts: { step: "initialize"; name: string },
    ): void;
  };
}

/** What a DynamoDB call is about: its index, or the kind of item its key names (`DESKTOP`, `TICKET`...). */
function keyKind(input: unknown): string {
  const i = input as {
    IndexName?: string;
    Key?: { sk?: unknown };
    Item?: { sk?: unknown };
    ExpressionAttributeValues?: Record<string, unknown>;
  };
  const v = i.ExpressionAttributeValues ?? {};
  const sk = i.Key?.sk ?? i.Item?.sk ?? v[":prefix"] ?? v[":from"];
  return i.IndexName ? `(${i.IndexName})` : sk ? `(${String(sk).split("#")[0]})` : "";
}

/** Calls made under a function whose frame matches `frame` are counted apart, their names prefixed by `label`. */
export interface Apart {
  label: string;
  frame: RegExp;
}

/** Whether the call being made runs under `apart.frame` (awaited callers are in V8's async stack). */
function madeUnder(apart: Apart): boolean {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 60;
  const stack = new Error().stack ?? "";
  Error.stackTraceLimit = limit;
  return apart.frame.test(stack);
}

export function count(client: Stack, into: Counts, prefix: string, opts: { byKey?: boolean; apart?: Apart }) {
  client.middlewareStack.add(
    (next, context) => (args) => {
      let name = `${prefix} ${(context.commandName ?? "?").replace(/Command$/, "")}`;
      if (opts.byKey && prefix === "dynamodb") name += keyKind((args as { input?: unknown }).input);
      if (opts.apart && madeUnder(opts.apart)) name = `${opts.apart.label} ${name}`;
      // BENCH_CALL_SITES=1: each call also names the domain function that made it (diagnosis).
      if (process.env.BENCH_CALL_SITES) name += ` ${callSite(new Error().stack ?? "")}`;
      into.set(name, (into.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: "initialize", name: "benchCallCounter" },
  );
}

/** The innermost caller in the domain or workers (shared/domain, shared/workers, shared/http). */
function callSite(stack: string): string {
  const frames = stack.split("\n").slice(1);
  const frame = frames.find((f) => /shared\/(domain|workers|http)\//.test(f));
  const m = frame && /at (?:async )?(\S+) .*\/(shared\/[^:]+):(\d+)/.exec(frame);
  return m ? `${m[1]} (${m[2]}:${m[3]})` : "?";
}

/**
 * Counts every region's DynamoDB and SQS calls (DynamoDB's by the kind of item too, with `byKey`;
 * those made under `apart`'s function by themselves); `perChange()` answers the counts from the
 * mark on.
 */
export function countCalls(regions: Region[], opts: { byKey?: boolean; apart?: Apart } = {}) {
  const byRegion = regions.map((r) => {
    const counts: Counts = new Map();
    count(r.app.dynamodb as unknown as Stack, counts, "dynamodb", opts);
    count(r.app.sqs as unknown as Stack, counts, "sqs", { ...opts, byKey: false });
    return { name: r.name, counts };
  });
  const snapshot = () => byRegion.map((r) => ({ name: r.name, counts: new Map(r.counts) }));
  let marked = snapshot();
  return {
    mark: () => {
      marked = snapshot();
    },
    /** Rows of [region and command, calls per `per`] since the mark, most frequent first. */
    perChange(per: number): [string, number][] {
      return byRegion
        .flatMap((r, i) =>
          [...r.counts].map(([name, n]): [string, number] => [
            `${r.name}: ${name}`,
            Math.round(((n - (marked[i]?.counts.get(name) ?? 0)) / per) * 100) / 100,
          ]),
        )
        .filter(([, n]) => n > 0)
        .sort((a, b) => b[1] - a[1]);
    },
  };
}

/**
 * The calls a worker in its own process (`local/agent.ts`, started with `--import` of
 * agent-calls.ts) made, read from the file it writes them to: as many rows as countCalls', with
 * the same names; `perChange()` answers them from the mark on.
 */
export function countAgentCalls(name: string, file: string, signal: () => void) {
  const read = async (): Promise<Counts> => {
    // The agent rewrites the file when signalled; its sequence number says the answer is new.
    const before = await readCounts(file);
    signal();
    const deadline = Date.now() + 10_000;
    for (;;) {
      const now = await readCounts(file);
      if (now.seq > before.seq) return now.counts;
      if (Date.now() > deadline) throw new Error(`the agent did not report its calls to ${file}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  let marked: Counts = new Map();
  return {
    mark: async () => {
      marked = await read();
    },
    async perChange(per: number): Promise<[string, number][]> {
      const counts = await read();
      return [...counts]
        .map(([n, c]): [string, number] => [
          `${name}: ${n}`,
          Math.round(((c - (marked.get(n) ?? 0)) / per) * 100) / 100,
        ])
        .filter(([, n]) => n > 0);
    },
  };
}

async function readCounts(file: string): Promise<{ seq: number; counts: Counts }> {
  const text = await readFile(file, "utf8").catch(() => "");
  if (!text) return { seq: 0, counts: new Map() };
  const { seq, counts } = JSON.parse(text) as { seq: number; counts: [string, number][] };
  return { seq, counts: new Map(counts) };
}
