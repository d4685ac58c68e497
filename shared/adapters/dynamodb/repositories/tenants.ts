import type { TenantRepository } from "../../../ports/index.ts";
import { entities } from "../entities.ts";
import { transact } from "../errors.ts";
import { keys } from "../keys.ts";
import type { Table } from "../table.ts";

export function tenantRepository(t: Table): TenantRepository {
  return {
    async create(tenant, apiKeyHash) {
      const result = await transact(t.doc, {
        tenant: {
          Put: {
            TableName: t.name,
            Item: entities.tenant.toItem({ ...tenant, apiKeyHash }),
            ConditionExpression: "attribute_not_exists(pk)",
          },
        },
        apiKey: {
          Put: {
            TableName: t.name,
            Item: entities.apiKey.toItem({ ...tenant, apiKeyHash }),
            ConditionExpression: "attribute_not_exists(pk)",
          },
        },
      });
      if (!result.ok) throw new Error(`tenant ${tenant.tenantId} or its key exists already`);
    },
    findByApiKeyHash: (hash) => t.get(entities.apiKey, keys.apiKey(hash), false),
    async get(tenantId) {
      const found = await t.get(entities.tenant, keys.tenant(tenantId));
      if (!found) return undefined;
      const { apiKeyHash: _h, ...tenant } = found;
      return tenant;
    },
  };
}
