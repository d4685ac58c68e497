/**
 * `npm run console -- <desktopId> [--dr]`: the serial console of a desktop's VM on the local host
 * (the user's shell inside the desktop; typing `logoff` there logs the user off). Ctrl-] leaves.
 * Locally this stands in for the user at the desktop; in production users reach it through VNC.
 */
import { connect } from "node:net";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { vmRunDir } from "../shared/config.ts";

const { positionals, values } = parseArgs({ allowPositionals: true, options: { dr: { type: "boolean" } } });
const desktopId = positionals[0];
if (!desktopId || !/^[A-Za-z0-9-]+$/.test(desktopId)) {
  console.error("usage: npm run console -- <desktopId> [--dr]");
  process.exit(2);
}
const dataDir = resolve(process.env.PRISTINE_DATA_DIR ?? "./.pristine");
const runDir = process.env.PRISTINE_VM_RUN_DIR ?? vmRunDir(values.dr ? join(dataDir, "dr") : dataDir);
const socketPath = join(runDir, desktopId, "console.sock");
const socket = connect(socketPath, () => {
  console.error(`connected to ${desktopId}'s console (Ctrl-] leaves)`);
  if (process.stdin.isTTY) process.stdin.setRawMode(true);
  process.stdin.on("data", (d: Buffer) => {
    if (d.includes(0x1d)) {
      socket.end();
      process.exit(0);
    }
    socket.write(d);
  });
  socket.write("\n");
});
socket.on("data", (d) => process.stdout.write(d));
socket.on("error", (err) => {
  console.error(`cannot reach ${desktopId}'s console at ${socketPath}: ${err.message}`);
  process.exit(1);
});
socket.on("close", () => process.exit(0));
