import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { DrRepository } from "../../../ports/index.ts";
import { entities } from "../entities.ts";
import { transact } from "../errors.ts";
import { keys } from "../keys.ts";
import { assignments, type Table } from "../table.ts";

/** DR state per tenant, drills, and configuration replicated from the peer region. */
export function drRepository(t: Table): DrRepository {
  const put = t.put;
  const getTenantWithKey: DrRepository["getTenantWithKey"] = async (tenantId) => {
    const item = await t.get(entities.tenant, keys.tenant(tenantId));
    if (!item?.apiKeyHash) return undefined;
    const { apiKeyHash, ...tenant } = item;
    return { tenant, apiKeyHash };
  };
  return {
    getState: (tenantId) => t.get(entities.drState, keys.drState(tenantId)),
    async updateState(tenantId, patch) {
      const { sets, names, values } = assignments(patch);
      await t.doc.send(
        new UpdateCommand({
          TableName: t.name,
          Key: keys.drState(tenantId),
          UpdateExpression: `SET entity = :e, tenantId = :t${sets.map((s) => `, ${s}`).join("")}`,
          ...(sets.length ? { ExpressionAttributeNames: names } : {}),
          ExpressionAttributeValues: { ":e": entities.drState.name, ":t": tenantId, ...values },
        }),
      );
    },
    async enterEpoch(tenantId, epoch, patch) {
      const { sets, names, values } = assignments(patch);
      return t.tryUpdate({
        Key: keys.drState(tenantId),
        UpdateExpression: `SET entity = :e, tenantId = :t, epoch = :epoch${sets.map((s) => `, ${s}`).join("")}`,
        ConditionExpression: "attribute_not_exists(epoch) OR epoch <= :epoch",
        ...(sets.length ? { ExpressionAttributeNames: names } : {}),
        ExpressionAttributeValues: {
          ":e": entities.drState.name,
          ":t": tenantId,
          ":epoch": epoch,
          ...values,
        },
      });
    },
    putStandbyPools: (tenantId, pools, appliedAt, revision) =>
      t.tryUpdate({
        Key: keys.drState(tenantId),
        UpdateExpression:
          "SET entity = :e, tenantId = :t, standbyPools = :p, configAppliedAt = :at, standbyRevision = :next",
        ConditionExpression:
          revision === 0 ? "attribute_not_exists(standbyRevision)" : "standbyRevision = :rev",
        ExpressionAttributeValues: {
          ":e": entities.drState.name,
          ":t": tenantId,
          ":p": pools,
          ":at": appliedAt,
          ":next": revision + 1,
          ...(revision === 0 ? {} : { ":rev": revision }),
        },
      }),
    async addShippedImage(tenantId, id) {
      // Concurrent ships of the configuration each add theirs; one already there is not repeated.
      await t.tryUpdate({
        Key: keys.drState(tenantId),
        UpdateExpression:
          "SET entity = :e, tenantId = :t, shippedImages = list_append(if_not_exists(shippedImages, :empty), :one)",
        ConditionExpression: "NOT contains(shippedImages, :id)",
        ExpressionAttributeValues: {
          ":e": entities.drState.name,
          ":t": tenantId,
          ":empty": [],
          ":one": [id],
          ":id": id,
        },
      });
    },
    async addDeletions(tenantId, { pools = [], versions = [] }) {
      const state = await t.get(entities.drState, keys.drState(tenantId));
      // A tombstone already there is not appended again (a racing call may still repeat one: readers
      // treat the lists as sets).
      const lists = {
        deletedPools: pools.filter((p) => !state?.deletedPools?.includes(p)),
        deletedVersions: versions.filter((v) => !state?.deletedVersions?.includes(v)),
      };
      const parts = Object.entries(lists).filter(([, items]) => items.length > 0);
      if (parts.length === 0) return;
      await t.doc.send(
        new UpdateCommand({
          TableName: t.name,
          Key: keys.drState(tenantId),
          UpdateExpression: `SET entity = :e, tenantId = :t${parts
            .map(([name]) => `, ${name} = list_append(if_not_exists(${name}, :empty), :${name})`)
            .join("")}`,
          ExpressionAttributeValues: {
            ":e": entities.drState.name,
            ":t": tenantId,
            ":empty": [],
            ...Object.fromEntries(parts.map(([name, items]) => [`:${name}`, items])),
          },
        }),
      );
    },
    async setKeyFailedOver(tenantId, failedOver) {
      const owner = await getTenantWithKey(tenantId);
      if (!owner) throw new Error(`tenant ${tenantId} has no key hash recorded here`);
      // Never a bare item: a key record without its tenant would break authentication.
      const updated = await t.tryUpdate({
        Key: keys.apiKey(owner.apiKeyHash),
        UpdateExpression: "SET failedOver = :f",
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeValues: { ":f": failedOver },
      });
      if (!updated) throw new Error(`tenant ${tenantId}'s key record is missing here`);
    },
    async putDrill(drill, expectedSteps) {
      if (expectedSteps === undefined) {
        await put(entities.drill.toItem(drill));
        return true;
      }
      const saved = await t.tryPut(entities.drill.toItem(drill), {
        expression:
          expectedSteps === 0 ? "attribute_not_exists(steps) OR steps = :expected" : "steps = :expected",
        values: { ":expected": expectedSteps },
      });
      return saved.written;
    },
    getDrill: (tenantId, drillId) => t.get(entities.drill, keys.drill(tenantId, drillId)),
    async putTenant(tenant, apiKeyHash) {
      // Both or neither: a tenant whose key record is missing cannot authenticate.
      await transact(t.doc, {
        tenant: { Put: { TableName: t.name, Item: entities.tenant.toItem({ ...tenant, apiKeyHash }) } },
        apiKey: { Put: { TableName: t.name, Item: entities.apiKey.toItem({ ...tenant, apiKeyHash }) } },
      });
    },
    getTenantWithKey,
    putImage: (image) => put(entities.image.toItem(image)),
    putVersion: (version) => put(entities.imageVersion.toItem(version)),
    async listTenantIds() {
      const tenants = await t.scanAll(entities.tenant, "attribute_exists(tenantId)", {});
      return tenants.map((x) => x.tenantId);
    },
    getReadiness: (tenantId) => t.get(entities.readiness, keys.readiness(tenantId)),
    async putReadiness(report) {
      const existing = await t.get(entities.readiness, keys.readiness(report.tenantId));
      // Check ids are ISO timestamps: a late report of an older check never replaces a newer one.
      const saved = await t.tryPut(entities.readiness.toItem(report), {
        expression: "attribute_not_exists(pk) OR checkId <= :c",
        values: { ":c": report.checkId },
      });
      return { written: saved.written, first: saved.written && existing?.checkId !== report.checkId };
    },
  };
}
