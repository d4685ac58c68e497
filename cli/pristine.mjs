#!/usr/bin/env node
// The `pristine` command. The CLI is TypeScript for Node 24: on an older Node (the one on PATH
// outside the clone), it runs on the Node 24 this clone installed, from whatever folder.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const main = join(here, "main.ts");

if (Number(process.versions.node.split(".")[0]) >= 24) {
  await import(main);
} else {
  const node = join(here, "..", "node_modules", "node", "bin", "node");
  const child = spawn(node, [main, ...process.argv.slice(2)], { stdio: "inherit" });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("error", (err) => {
    console.error(`error: cannot start Node 24 at ${node} (${err.message}); run npm ci in the clone`);
    process.exit(4);
  });
  child.on("exit", (code, signal) => (signal ? process.kill(process.pid, signal) : process.exit(code ?? 4)));
}
