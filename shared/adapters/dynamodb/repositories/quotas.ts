import { PutCommand } from "@aws-sdk/lib-dynamodb";
import type { TenantUsage } from "../../../domain/model.ts";
import type { QuotaRepository, TenantCharge } from "../../../ports/index.ts";
import { entities } from "../entities.ts";
import { keys } from "../keys.ts";
import type { Table } from "../table.ts";

const counters = ["desktops", "provisionedBytes", "images"] as const;

/**
 * A charge is an add on the tenant's usage item, conditional on staying within its limits: two
 * concurrent writes cannot both pass a quota, because each checks the sum the other left. Every
 * write sets all counters, so a missing one means no item yet: the domain has then checked the
 * charge against the limits itself (a condition cannot compare two values).
 */
export function chargeUpdate(table: string, c: TenantCharge) {
  const values: Record<string, unknown> = {
    ":usage": entities.tenantUsage.name,
    ":t": c.tenantId,
    ":zero": 0,
    ":desktops": c.desktops,
    ":bytes": c.provisionedBytes,
  };
  let condition: string | undefined;
  if (c.limits) {
    values[":maxDesktops"] = c.limits.maxDesktops - c.desktops;
    values[":maxBytes"] = c.limits.maxProvisionedBytes - c.provisionedBytes;
    condition =
      "(attribute_not_exists(desktops) OR desktops <= :maxDesktops) AND " +
      "(attribute_not_exists(provisionedBytes) OR provisionedBytes <= :maxBytes)";
  }
  return {
    Update: {
      TableName: table,
      Key: keys.tenantUsage(c.tenantId),
      UpdateExpression:
        "SET entity = :usage, tenantId = :t, desktops = if_not_exists(desktops, :zero) + :desktops, " +
        "provisionedBytes = if_not_exists(provisionedBytes, :zero) + :bytes, images = if_not_exists(images, :zero)",
      ...(condition ? { ConditionExpression: condition } : {}),
      ExpressionAttributeValues: values,
    },
  };
}

/** The counterpart of a charge when a desktop goes: never conditional, it only gives back. */
export function releaseUpdate(table: string, tenantId: string, provisionedBytes: number) {
  return {
    Update: {
      TableName: table,
      Key: keys.tenantUsage(tenantId),
      UpdateExpression: "SET entity = :usage, tenantId = :t ADD desktops :minusOne, provisionedBytes :minus",
      ExpressionAttributeValues: {
        ":usage": entities.tenantUsage.name,
        ":t": tenantId,
        ":minusOne": -1,
        ":minus": -provisionedBytes,
      },
    },
  };
}

/** An image counted against `maxImages`, refused at it. */
export function imageChargeUpdate(table: string, tenantId: string, maxImages: number) {
  return {
    Update: {
      TableName: table,
      Key: keys.tenantUsage(tenantId),
      UpdateExpression:
        "SET entity = :usage, tenantId = :t, images = if_not_exists(images, :zero) + :one, " +
        "desktops = if_not_exists(desktops, :zero), provisionedBytes = if_not_exists(provisionedBytes, :zero)",
      ConditionExpression: "attribute_not_exists(images) OR images < :max",
      ExpressionAttributeValues: {
        ":usage": entities.tenantUsage.name,
        ":t": tenantId,
        ":zero": 0,
        ":one": 1,
        ":max": maxImages,
      },
    },
  };
}

export function quotaRepository(t: Table): QuotaRepository {
  return {
    async getOverrides(tenantId) {
      const found = await t.get(entities.quotas, keys.quotas(tenantId));
      if (!found) return {};
      const { tenantId: _t, ...overrides } = found;
      return overrides;
    },
    async putOverrides(tenantId, overrides) {
      await t.doc.send(
        new PutCommand({ TableName: t.name, Item: entities.quotas.toItem({ ...overrides, tenantId }) }),
      );
    },
    async usage(tenantId) {
      const found = await t.get(entities.tenantUsage, keys.tenantUsage(tenantId));
      const usage = {} as TenantUsage;
      for (const c of counters) usage[c] = Number(found?.[c] ?? 0);
      return usage;
    },
  };
}
