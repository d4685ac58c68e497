/** Quotas: the tenant sees its own (`pristine quotas`), the operator sees and sets a tenant's. */
import type { Command } from "commander";
import type { QuotaLimits, QuotaName, TenantQuotas } from "../../shared/domain/model.ts";
import * as s from "../../shared/http/schemas.ts";
import { integer, number, validBody, validId } from "../args.ts";
import { api, show } from "../context.ts";
import { bytes, printTable } from "../output.ts";

const GiB = 1024 ** 3;

const rows: [QuotaName, string, (u: TenantQuotas["usage"]) => number | undefined, boolean][] = [
  ["maxDesktops", "desktops", (u) => u.desktops, false],
  ["maxProvisionedBytes", "provisioned", (u) => u.provisionedBytes, true],
  ["maxImages", "images", (u) => u.images, false],
  ["maxImageBytes", "one image's size", () => undefined, true],
];

export function quotaTable(q: TenantQuotas): void {
  printTable(
    ["quota", "limit", "in use", "set by"],
    rows.map(([name, label, used, isBytes]) => {
      const inUse = used(q.usage);
      return [
        label,
        isBytes ? bytes(q.limits[name]) : q.limits[name],
        inUse === undefined ? undefined : isBytes ? bytes(inUse) : inUse,
        q.overridden.includes(name) ? "operator" : "default",
      ];
    }),
  );
}

/** `pristine quotas`: the tenant's own quotas and usage. */
export function quotaCommands(program: Command): void {
  program
    .command("quotas")
    .description(
      "your quotas (desktops, provisioned bytes, images, an image's size) and what you use of them",
    )
    .action(async (_f: unknown, cmd: Command) => {
      const client = await api(cmd);
      show(cmd, await client.json<TenantQuotas>("GET", "/v1/quotas"), quotaTable);
    });
}

interface QuotaFlags {
  desktops?: number;
  provisionedGib?: number;
  images?: number;
  imageGib?: number;
  reset?: boolean;
}

/** `pristine tenants quotas|set-quotas <tenantId>` (operator key). */
export function tenantQuotaCommands(tenants: Command): void {
  tenants
    .command("quotas <tenantId>")
    .description("a tenant's quotas and usage")
    .action(async (tenantId: string, _f: unknown, cmd: Command) => {
      validId(s.id, "tenant", tenantId);
      const client = await api(cmd);
      show(cmd, await client.json<TenantQuotas>("GET", `/v1/admin/tenants/${tenantId}/quotas`), quotaTable);
    });
  tenants
    .command("set-quotas <tenantId>")
    .description("set a tenant's quotas; the others it has set stay (--reset: back to the defaults first)")
    .option("--desktops <n>", "most desktops across its pools", integer)
    .option("--provisioned-gib <GiB>", "most bytes its desktops may reserve on datastores", number)
    .option("--images <n>", "most golden images", integer)
    .option("--image-gib <GiB>", "largest virtual size of one image version", number)
    .option("--reset", "drop the quotas set before: those not given here follow the defaults")
    .action(async (tenantId: string, f: QuotaFlags, cmd: Command) => {
      validId(s.id, "tenant", tenantId);
      const client = await api(cmd);
      const path = `/v1/admin/tenants/${tenantId}/quotas`;
      const kept: Partial<QuotaLimits> = {};
      if (!f.reset) {
        const current = await client.json<TenantQuotas>("GET", path);
        for (const name of current.overridden) kept[name] = current.limits[name];
      }
      const gib = (n: number | undefined) => (n === undefined ? undefined : Math.round(n * GiB));
      const given: Partial<Record<QuotaName, number | undefined>> = {
        maxDesktops: f.desktops,
        maxProvisionedBytes: gib(f.provisionedGib),
        maxImages: f.images,
        maxImageBytes: gib(f.imageGib),
      };
      for (const [name, value] of Object.entries(given))
        if (value !== undefined) kept[name as QuotaName] = value;
      const body = validBody(s.putQuotasBody, kept);
      show(cmd, await client.json<TenantQuotas>("PUT", path, { body }), quotaTable);
    });
}
