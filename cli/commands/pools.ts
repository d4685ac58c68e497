/** Pools: create (--wait), list, get, resize (--wait), timeouts, delete, desktops, recompose and rollback (--wait). */
import type { Command } from "commander";
import type { Desktop, Pool } from "../../shared/domain/model.ts";
import type { PoolDescription } from "../../shared/http/responses.ts";
import * as s from "../../shared/http/schemas.ts";
import { integer, number, validBody, validId } from "../args.ts";
import type { ApiClient } from "../client.ts";
import { api, show, type WaitFlags, waitOptions, withWait } from "../context.ts";
import { bytes, counts, printFields, printTable } from "../output.ts";
import { type Progress, waitFor } from "../wait.ts";
import { poolSizingCommands, sizingFrom, withSizingOptions } from "./pool-sizing.ts";
import {
  poolTimeoutsCommand,
  type TimeoutFlags,
  timeoutFields,
  timeoutsFrom,
  withTimeoutOptions,
} from "./pool-timeouts.ts";

/** GET /v1/pools/{poolId}: the pool with its desktops counted by state (the API's own answer type). */
export type PoolView = PoolDescription;

/** Provisioning as progress: every desktop in service (AVAILABLE, or ASSIGNED to a user); any ERROR fails it. */
export function provisioningProgress(pool: PoolView): Progress {
  const c = pool.desktopCounts;
  const inService = (c.AVAILABLE ?? 0) + (c.ASSIGNED ?? 0);
  const errors = c.ERROR ?? 0;
  const failed =
    pool.state === "DELETING"
      ? "the pool is being deleted"
      : errors > 0
        ? `${errors} desktop(s) in ERROR (${counts(c)})`
        : undefined;
  return {
    value: Math.min(inService, pool.size),
    total: pool.size,
    status: counts(c),
    done: inService >= pool.size && !failed,
    ...(failed ? { failed } : {}),
  };
}

/** A recompose as progress: done when no desktop is pending; a desktop that failed fails it. */
export function recomposeProgress(pool: PoolView): Progress {
  const r = pool.recompose;
  if (!r)
    return { value: 0, total: 0, status: "no recompose", done: false, failed: "the pool has no recompose" };
  const total = r.done + r.pending + r.failed;
  return {
    value: r.done,
    total,
    status: `to version ${r.toVersion}: ${r.done} done, ${r.pending} pending, ${r.failed} failed`,
    done: r.pending === 0 && r.failed === 0,
    ...(r.failed > 0
      ? { failed: `${r.failed} desktop(s) failed to recompose to version ${r.toVersion}` }
      : {}),
  };
}

interface CreateFlags extends WaitFlags, TimeoutFlags {
  image: string;
  imageVersion?: number;
  size?: number;
  assignment?: string;
  cloneType?: string;
  refreshPolicy?: string;
  refreshDeltaPercent?: number;
  refreshEveryDays?: number;
  datastore?: string[];
}

function createBody(name: string, f: CreateFlags) {
  const optional = {
    imageVersion: f.imageVersion,
    assignment: f.assignment,
    cloneType: f.cloneType,
    refreshPolicy: f.refreshPolicy,
    refreshWhenDeltaExceedsPercent: f.refreshDeltaPercent,
    refreshEveryDays: f.refreshEveryDays,
    datastoreIds: f.datastore,
    size: f.size,
    sessionTimeouts: timeoutsFrom(f),
    ...sizingFrom(f as unknown as Record<string, unknown>),
  };
  const given = Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined));
  return validBody(s.createPoolBody, { name, imageId: f.image, ...given });
}

const readPool = (client: ApiClient, poolId: string) => client.json<PoolView>("GET", `/v1/pools/${poolId}`);

async function showPool(
  cmd: Command,
  client: ApiClient,
  poolId: string,
  f: WaitFlags,
  kind: "provisioning" | "recompose",
) {
  const pool = f.wait
    ? await waitFor(
        waitOptions(`pool ${poolId} ${kind}`, f),
        () => readPool(client, poolId),
        kind === "provisioning" ? provisioningProgress : recomposeProgress,
      )
    : await readPool(client, poolId);
  show(cmd, pool, poolFields);
}

export function poolCommands(program: Command): void {
  const pools = program.command("pools").description("desktop pools");
  withWait(
    withSizingOptions(withTimeoutOptions(pools.command("create <name>")))
      .description("create a pool of desktops from an image version (--size, or --max-size to size itself)")
      .requiredOption("--image <imageId>", "the golden image")
      .option("--size <n>", "how many desktops (a fixed pool)", integer)
      .option("--image-version <n>", "the version (default: the latest)", integer)
      .option("--assignment <kind>", "floating (default) or dedicated")
      .option("--clone-type <type>", "linked (default) or full")
      .option("--refresh-policy <policy>", "at logoff: refresh, delete or none")
      .option(
        "--refresh-delta-percent <percent>",
        "refresh once the delta exceeds this % of the replica",
        number,
      )
      .option(
        "--refresh-every-days <days>",
        "refresh once the desktop is this many days from pristine",
        number,
      )
      .option("--datastore <datastoreId...>", "datastores the pool may use (default: all)"),
    "every desktop is AVAILABLE (exit 5 on a desktop in ERROR)",
  ).action(async (name: string, f: CreateFlags, cmd: Command) => {
    const body = createBody(name, f);
    const client = await api(cmd);
    const pool = await client.json<Pool>("POST", "/v1/pools", { body });
    if (!f.wait) return show(cmd, pool, (p) => poolFields({ ...p, desktopCounts: {} } as PoolView));
    await showPool(cmd, client, pool.poolId, f, "provisioning");
  });
  pools
    .command("list")
    .description("the tenant's pools")
    .action(async (_f: unknown, cmd: Command) => {
      const client = await api(cmd);
      show(cmd, await client.json<{ items: Pool[] }>("GET", "/v1/pools"), (r) =>
        printTable(
          ["pool", "name", "image", "version", "size", "assignment", "state"],
          r.items.map((p) => [p.poolId, p.name, p.imageId, p.imageVersion, p.size, p.assignment, p.state]),
        ),
      );
    });
  pools
    .command("get <poolId>")
    .description("a pool with its desktops counted by state and its recompose progress")
    .action(async (poolId: string, _f: unknown, cmd: Command) => {
      validId(s.id, "pool", poolId);
      show(cmd, await readPool(await api(cmd), poolId), poolFields);
    });
  withWait(
    pools
      .command("resize")
      .argument("<poolId>")
      .argument("<size>", "the new size", integer)
      .description("grow (new desktops placed like a new pool's) or shrink (free desktops deleted)"),
    "every desktop is AVAILABLE or ASSIGNED",
  ).action(async (poolId: string, size: number, f: WaitFlags, cmd: Command) => {
    validId(s.id, "pool", poolId);
    const body = validBody(s.patchPoolBody, { size });
    const client = await api(cmd);
    await client.json<Pool>("PATCH", `/v1/pools/${poolId}`, { body });
    await showPool(cmd, client, poolId, f, "provisioning");
  });
  poolTimeoutsCommand(pools);
  poolSizingCommands(pools);
  pools
    .command("delete <poolId>")
    .description("drain a pool: sessions logged off, desktops and their deltas deleted")
    .action(async (poolId: string, _f: unknown, cmd: Command) => {
      validId(s.id, "pool", poolId);
      const client = await api(cmd);
      show(cmd, await client.json<Pool>("DELETE", `/v1/pools/${poolId}`), (p) =>
        printFields([
          ["poolId", p.poolId],
          ["state", p.state],
        ]),
      );
    });
  pools
    .command("desktops <poolId>")
    .description("a pool's desktops: state, datastore, image version, delta size, user")
    .action(async (poolId: string, _f: unknown, cmd: Command) => {
      validId(s.id, "pool", poolId);
      const client = await api(cmd);
      type Row = Desktop & { deltaBytes?: number };
      show(cmd, await client.json<{ items: Row[] }>("GET", `/v1/pools/${poolId}/desktops`), (r) =>
        printTable(
          ["desktop", "state", "datastore", "version", "delta", "user", "console"],
          r.items.map((d) => [
            d.desktopId,
            d.state,
            d.datastoreId,
            d.imageVersion,
            bytes(d.deltaBytes),
            d.userId,
            d.console ? `${d.console.host}:${d.console.port}` : undefined,
          ]),
        ),
      );
    });
  withWait(
    pools
      .command("recompose")
      .argument("<poolId>")
      .argument("<imageVersion>", "the version to move to", integer)
      .description("move a pool to another image version: free desktops at once, busy ones at logoff")
      .option("--force", "log busy desktops' users off now"),
    "no desktop is left to recompose (exit 5 if one failed)",
  ).action(async (poolId: string, imageVersion: number, f: WaitFlags & { force?: boolean }, cmd: Command) => {
    validId(s.id, "pool", poolId);
    const body = validBody(s.recomposeBody, { imageVersion, ...(f.force ? { force: true } : {}) });
    const client = await api(cmd);
    await client.json<unknown>("POST", `/v1/pools/${poolId}/recompose`, { body });
    await showPool(cmd, client, poolId, f, "recompose");
  });
  withWait(
    pools
      .command("rollback <poolId>")
      .description("undo the last recompose: back to the version it came from")
      .option("--force", "log busy desktops' users off now"),
    "no desktop is left to move back (exit 5 if one failed)",
  ).action(async (poolId: string, f: WaitFlags & { force?: boolean }, cmd: Command) => {
    validId(s.id, "pool", poolId);
    const body = validBody(s.rollbackBody, f.force ? { force: true } : {});
    const client = await api(cmd);
    await client.json<unknown>("POST", `/v1/pools/${poolId}/recompose/rollback`, { body });
    await showPool(cmd, client, poolId, f, "recompose");
  });
}

function poolFields(p: PoolView): void {
  const r = p.recompose;
  printFields([
    ["poolId", p.poolId],
    ["name", p.name],
    ["state", p.state],
    ["image", `${p.imageId} version ${p.imageVersion}`],
    ["size", p.size],
    ["assignment", p.assignment],
    ["cloneType", p.cloneType],
    ["refreshPolicy", p.refreshPolicy],
    ["datastores", p.datastoreIds?.join(", ")],
    ["desktops", counts(p.desktopCounts)],
    [
      "recompose",
      r
        ? `${r.fromVersion} -> ${r.toVersion}: ${r.done} done, ${r.pending} pending, ${r.failed} failed`
        : undefined,
    ],
    ...timeoutFields(p),
  ]);
}
