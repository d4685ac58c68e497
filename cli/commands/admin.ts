/** Operator commands (operator key): tenants (and their quotas) and datastores. */
import type { Command } from "commander";
import * as s from "../../shared/http/schemas.ts";
import { number, validBody, validId } from "../args.ts";
import { api, show } from "../context.ts";
import { bytes, printFields, printLine, printTable } from "../output.ts";
import { setProfile } from "./profile.ts";
import { tenantQuotaCommands } from "./quotas.ts";

interface CreatedTenant {
  tenantId: string;
  name: string;
  createdAt: string;
  apiKey: string;
}

interface DatastoreRow {
  datastoreId: string;
  path: string;
  capacityGiB: number;
  overcommit: number;
  hostId?: string;
  provisionedBytes?: number;
  provisionedPercent?: number;
  effectiveFreeBytes?: number;
}

export function adminCommands(program: Command): void {
  const tenants = program.command("tenants").description("tenants (operator key)");
  tenants
    .command("create <name>")
    .description("create a tenant; its API key is shown once")
    .option("--save-profile <profile>", "save the new key as this profile (same API URLs as the current one)")
    .action(async (name: string, flags: { saveProfile?: string }, cmd: Command) => {
      const client = await api(cmd);
      const body = validBody(s.createTenantBody, { name });
      // No stored answer to replay (it holds the key): never resent after a lost connection.
      const tenant = await client.json<CreatedTenant>("POST", "/v1/admin/tenants", {
        body,
        retryOnReset: false,
      });
      if (flags.saveProfile) {
        const dr = await api(cmd, "dr");
        const drUrl = dr.baseUrl !== client.baseUrl ? { drUrl: dr.baseUrl } : {};
        await setProfile(flags.saveProfile, { url: client.baseUrl, key: tenant.apiKey, ...drUrl }, false);
      }
      show(cmd, tenant, (t) => {
        printFields([
          ["tenantId", t.tenantId],
          ["name", t.name],
          ["apiKey", t.apiKey],
        ]);
        printLine(
          flags.saveProfile
            ? `the key is saved as profile ${flags.saveProfile}; it is not shown again`
            : "keep the key: it is not shown again",
        );
      });
    });

  tenantQuotaCommands(tenants);

  const datastores = program.command("datastores").description("datastores (operator key)");
  datastores
    .command("register <datastoreId>")
    .description("register a datastore (or change one)")
    .requiredOption("--path <path>", "where its disks live (absolute)")
    .requiredOption("--capacity-gib <GiB>", "its capacity", number)
    .option("--overcommit <ratio>", "provisioned bytes allowed per byte of capacity (default 1)", number)
    .option("--host <hostId>", "the host whose agent runs its jobs")
    .action(
      async (
        datastoreId: string,
        f: { path: string; capacityGib: number; overcommit?: number; host?: string },
        cmd: Command,
      ) => {
        const body = validBody(s.registerDatastoreBody, {
          datastoreId,
          path: f.path,
          capacityGiB: f.capacityGib,
          ...(f.overcommit !== undefined ? { overcommit: f.overcommit } : {}),
          ...(f.host ? { hostId: f.host } : {}),
        });
        const client = await api(cmd);
        show(cmd, await client.json<DatastoreRow>("POST", "/v1/admin/datastores", { body }), (d) =>
          datastoreTable([d]),
        );
      },
    );
  datastores
    .command("list")
    .description("datastores with their provisioned space")
    .action(async (_flags: unknown, cmd: Command) => {
      const client = await api(cmd);
      show(cmd, await client.json<{ items: DatastoreRow[] }>("GET", "/v1/admin/datastores"), (r) =>
        datastoreTable(r.items),
      );
    });
  datastores
    .command("rebalance <datastoreId>")
    .description("move free desktops off a datastore above a threshold")
    .option("--threshold <percent>", "provisioned percent to bring the datastore under", number)
    .action(async (datastoreId: string, f: { threshold?: number }, cmd: Command) => {
      validId(s.id, "datastore", datastoreId);
      const body = validBody(
        s.rebalanceBody,
        f.threshold !== undefined ? { thresholdPercent: f.threshold } : {},
      );
      const client = await api(cmd);
      const answer = await client.json<Record<string, unknown>>(
        "POST",
        `/v1/admin/datastores/${datastoreId}/rebalance`,
        { body },
      );
      show(cmd, answer, (r) =>
        printFields([
          ["datastoreId", String(r.datastoreId)],
          ["thresholdPercent", Number(r.thresholdPercent)],
          ["moved", Array.isArray(r.moved) ? r.moved.length : Number(r.moved)],
          ["remainingExcess", bytes(Number(r.remainingExcessBytes))],
        ]),
      );
    });
}

function datastoreTable(rows: DatastoreRow[]): void {
  printTable(
    [
      "datastore",
      "path",
      "capacity GiB",
      "overcommit",
      "host",
      "provisioned",
      "provisioned %",
      "free (effective)",
    ],
    rows.map((d) => [
      d.datastoreId,
      d.path,
      d.capacityGiB,
      d.overcommit,
      d.hostId,
      bytes(d.provisionedBytes),
      d.provisionedPercent?.toFixed(1),
      bytes(d.effectiveFreeBytes),
    ]),
  );
}
