/** Disaster recovery: replication status, drills (--wait), failover and failback (on the DR region). */
import type { Command } from "commander";
import { type Drill, type DrState, drillPhases } from "../../shared/domain/dr-model.ts";
import type { ReadinessStatus, ReplicationStatus, UserDataForkAnswer } from "../../shared/http/responses.ts";
import * as s from "../../shared/http/schemas.ts";
import { integer, validBody, validId } from "../args.ts";
import type { ApiClient } from "../client.ts";
import { api, show, type WaitFlags, waitOptions, withWait } from "../context.ts";
import { printFields, printTable } from "../output.ts";
import { type Progress, waitFor } from "../wait.ts";

/** A drill as progress: its phase among the phases; final once it is no longer RUNNING. */
export function drillProgress(drill: Drill): Progress {
  const last = drillPhases.length - 1;
  const at = Math.max(0, drillPhases.indexOf(drill.phase));
  return {
    value: drill.state === "RUNNING" ? Math.min(at, last - 1) : last,
    total: last,
    status: `${drill.state} ${drill.phase}`,
    done: drill.state === "SUCCEEDED",
    ...(drill.state === "FAILED"
      ? { failed: `drill ${drill.drillId}: ${drill.error ?? "no reason given"}` }
      : {}),
  };
}

const ms = (n: number | undefined) => (n === undefined ? undefined : `${(n / 1000).toFixed(1)} s`);

function drillFields(d: Drill): void {
  printFields([
    ["drillId", d.drillId],
    ["state", d.state],
    ["phase", d.phase],
    ["pools", d.pools.join(", ")],
    ["RPO", d.rpoMs !== undefined ? `${ms(d.rpoMs)}${d.rpoNote ? ` (${d.rpoNote})` : ""}` : d.rpoNote],
    ["RTO first user", ms(d.rtoFirstLogonMs)],
    ["RTO all users", ms(d.rtoAllLogonsMs)],
    ["users planned", d.usersPlanned],
    ["users logged on", d.usersLoggedOn],
    ["users verified", d.usersVerified],
    ["users failed", d.usersFailed?.map((u) => `${u.userId}: ${u.reason}`).join("; ")],
    ["bytes shipped", d.bytesShipped],
    ["startedAt", d.startedAt],
    ["finishedAt", d.finishedAt],
    ["error", d.error],
  ]);
}

function drStateFields(state: DrState): void {
  printFields([
    ["failedOver", state.failedOver ?? false],
    ["failedOverAt", state.failedOverAt],
    ["failingBack", state.failingBack ?? false],
    ["epoch", state.epoch ?? 0],
    ["primaryFenced", "primaryFenced" in state ? String(state.primaryFenced) : undefined],
    ["failedBackAt", state.failedBackAt],
    ["standbyPools", state.standbyPools?.map((p) => p.poolId).join(", ")],
  ]);
}

async function showDrill(cmd: Command, client: ApiClient, drillId: string, f: WaitFlags): Promise<void> {
  const read = () => client.json<Drill>("GET", `/v1/dr/drills/${drillId}`);
  const drill = f.wait
    ? await waitFor(waitOptions(`drill ${drillId}`, f), read, drillProgress)
    : await read();
  show(cmd, drill, drillFields);
}

export function drCommands(program: Command): void {
  const replication = program.command("replication").description("DR replication");
  replication
    .command("readiness")
    .description("the last readiness check: users' data, image versions and pools verified in DR")
    .option("--dr", "ask the DR region (the check it ran) instead of the primary (the report it received)")
    .action(async (f: { dr?: boolean }, cmd: Command) => {
      const client = await api(cmd, f.dr ? "dr" : "primary");
      show(cmd, await client.json<ReadinessStatus>("GET", "/v1/dr/readiness"), (r) => {
        printFields([
          ["region", r.region],
          ["peer", r.peer],
          ["current RPO", ms(r.currentRpoMs)],
          ["overdue", r.overdue],
          ["checked", r.report ? `${r.report.checkedAt} by ${r.report.checkedRegion}` : "never"],
          ["ok", r.report?.ok],
          ["users", r.report ? `${r.report.users.length} sampled of ${r.report.usersTotal}` : undefined],
          ["image versions", r.report?.imageVersionsChecked],
          ["pools", r.report?.poolsChecked],
          ["failures", r.report?.failures.map((x) => `${x.kind} ${x.id}: ${x.reason}`).join("; ")],
        ]);
      });
    });
  replication
    .command("status")
    .description("replication backlog and DR state of a region for the tenant")
    .option("--dr", "ask the DR region (its standby pools) instead of the primary")
    .action(async (f: { dr?: boolean }, cmd: Command) => {
      const client = await api(cmd, f.dr ? "dr" : "primary");
      show(cmd, await client.json<ReplicationStatus>("GET", "/v1/dr/replication"), (r) => {
        printFields([
          ["region", r.region],
          ["peer", r.peer],
          ["pending changes", r.pendingChanges],
          ["oldest pending", ms(r.oldestPendingAgeMs)],
          ["bytes shipped", r.bytesShipped],
          ["failed over", r.dr.failedOver ?? false],
          ["fenced", r.dr.fenced ?? false],
          ["epoch", r.dr.epoch ?? 0],
          ["open forks", r.forks.filter((f) => f.state !== "RESOLVED").length],
          ["standby pools", r.dr.standbyPools.join(", ")],
          ["images shipped", r.dr.imagesShipped],
        ]);
      });
    });
  replication
    .command("forks")
    .description("users' data kept outside their history at a failover (held in this region)")
    .option("--dr", "ask the DR region instead of the primary")
    .action(async (f: { dr?: boolean }, cmd: Command) => {
      const client = await api(cmd, f.dr ? "dr" : "primary");
      const { forks } = await client.json<ReplicationStatus>("GET", "/v1/dr/replication");
      show(cmd, forks, (rows) =>
        printTable(
          ["forkId", "user", "cause", "state", "base", "keep", "resolved as"],
          rows.map((x) => [
            x.forkId,
            x.userId,
            x.cause,
            x.state,
            `v${x.baseVersion}`,
            x.keep ?? "",
            x.resolvedVersion === undefined ? "" : `v${x.resolvedVersion}`,
          ]),
        ),
      );
    });
  replication
    .command("resolve-fork <forkId>")
    .description("keep the current history (the fork is dropped) or the fork (it becomes the next version)")
    .requiredOption("--keep <which>", "current | fork")
    .option("--dr", "resolve in the DR region (where the fork is held) instead of the primary")
    .action(async (forkId: string, f: { keep: string; dr?: boolean }, cmd: Command) => {
      validId(s.id, "fork", forkId);
      const body = validBody(s.resolveForkBody, { keep: f.keep });
      const client = await api(cmd, f.dr ? "dr" : "primary");
      const path = `/v1/dr/forks/${forkId}/resolve`;
      show(cmd, await client.json<UserDataForkAnswer>("POST", path, { body }), (x) =>
        printFields([
          ["forkId", x.forkId],
          ["user", x.userId],
          ["state", x.state],
          ["keep", x.keep],
        ]),
      );
    });

  const drills = program.command("drills").description("DR drills (on the DR region)");
  withWait(
    drills
      .command("start <poolId...>")
      .description("fail pools over in a drill: users log on in DR with their data; report RPO and RTO")
      .option("--sample-users <n>", "how many users to log on (default: all)", integer),
    "the drill's report is final (exit 5 if it FAILED)",
  ).action(async (pools: string[], f: WaitFlags & { sampleUsers?: number }, cmd: Command) => {
    const body = validBody(s.startDrillBody, {
      pools,
      ...(f.sampleUsers !== undefined ? { sampleUsers: f.sampleUsers } : {}),
    });
    const client = await api(cmd, "dr");
    const drill = await client.json<Drill>("POST", "/v1/dr/drills", { body });
    await showDrill(cmd, client, drill.drillId, f);
  });
  withWait(
    drills.command("get <drillId>").description("a drill's progress and report"),
    "the drill's report is final (exit 5 if it FAILED)",
  ).action(async (drillId: string, f: WaitFlags, cmd: Command) => {
    validId(s.id, "drill", drillId);
    await showDrill(cmd, await api(cmd, "dr"), drillId, f);
  });

  program
    .command("failover")
    .description("serve the tenant from the DR region: its replicated pools become real ones")
    .action(async (_f: unknown, cmd: Command) => {
      const client = await api(cmd, "dr");
      show(cmd, await client.json<DrState>("POST", "/v1/dr/failover", { body: {} }), drStateFields);
    });
  program
    .command("failback")
    .description("hand the tenant back to the primary once it has every change")
    .action(async (_f: unknown, cmd: Command) => {
      const client = await api(cmd, "dr");
      show(cmd, await client.json<DrState>("POST", "/v1/dr/failback", { body: {} }), drStateFields);
    });
}
