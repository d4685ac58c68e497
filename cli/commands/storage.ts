/** `pristine storage`: space per datastore and pool, against full clones. */
import type { Command } from "commander";
import type { SpaceFigures, StorageReport } from "../../shared/http/responses.ts";
import { api, show } from "../context.ts";
import { bytes, printTable } from "../output.ts";

const figures = (f: SpaceFigures) => [
  f.desktops,
  bytes(f.replicaBytes),
  bytes(f.deltaBytes),
  bytes(f.usedBytes),
  bytes(f.provisionedBytes),
  bytes(f.fullCloneBytes),
  bytes(f.savedBytes),
];
const head = ["desktops", "replicas", "deltas", "used", "provisioned", "as full clones", "saved"];

export function storageCommands(program: Command): void {
  program
    .command("storage")
    .description("space used per datastore and pool, and what linked clones save against full clones")
    .action(async (_f: unknown, cmd: Command) => {
      const client = await api(cmd);
      show(cmd, await client.json<StorageReport>("GET", "/v1/storage"), (r) => {
        printTable(
          ["datastore", ...head],
          [...r.datastores.map((d) => [d.datastoreId, ...figures(d)]), ["total", ...figures(r.total)]],
        );
        printTable(
          ["pool", "name", "clone type", ...head],
          r.pools.map((p) => [p.poolId, p.name, p.cloneType, ...figures(p)]),
        );
      });
    });
}
