/**
 * Loaded into a worker process by the benches (`node --import test/bench/agent-calls.ts
 * local/agent.ts ...`): counts that process's DynamoDB and SQS calls as calls.ts does in the
 * bench's own process, and writes them to BENCH_AGENT_CALLS_FILE on SIGUSR2.
 */
import { writeFileSync } from "node:fs";
import { Client } from "@smithy/core/client";
import { count } from "./calls.ts";

const file = process.env.BENCH_AGENT_CALLS_FILE;
if (file) {
  const counts = new Map<string, number>();
  const counted = new WeakSet<object>();
  const send = Client.prototype.send;
  // Every client's stack gets the counter on its first call (the DynamoDB document client shares
  // its client's stack: counted once).
  Client.prototype.send = function (this: Client<any, any, any, any>, ...args: any[]) {
    const stack = this.middlewareStack;
    if (!counted.has(stack)) {
      counted.add(stack);
      const service = this.config.serviceId ?? (this.constructor.name.replace(/Client$/, "") || "?");
      const prefix = String(service)
        .toLowerCase()
        .replace(/^dynamodb.*/, "dynamodb");
      count(this as never, counts, prefix, { byKey: true });
    }
    return (send as (...a: any[]) => any).apply(this, args);
  } as typeof send;
  let seq = 0;
  process.on("SIGUSR2", () => {
    seq++;
    writeFileSync(file, JSON.stringify({ seq, counts: [...counts] }));
  });
}
