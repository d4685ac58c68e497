import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { RetryLater } from "../../../domain/errors.ts";
import type { ImageRepository } from "../../../ports/index.ts";
import { entities } from "../entities.ts";
import { transact } from "../errors.ts";
import { keys } from "../keys.ts";
import { assignments, type Table } from "../table.ts";
import { watchIndex } from "../table-schema.ts";
import { imageChargeUpdate } from "./quotas.ts";

export function imageRepository(t: Table): ImageRepository {
  const getImage = (tenantId: string, imageId: string) =>
    t.get(entities.image, keys.image(tenantId, imageId));
  return {
    async createImage(image, maxImages) {
      const result = await transact(
        t.doc,
        {
          image: {
            Put: {
              TableName: t.name,
              Item: entities.image.toItem(image),
              ConditionExpression: "attribute_not_exists(pk)",
            },
          },
          charge: imageChargeUpdate(t.name, image.tenantId, maxImages),
        },
        { conflictIsRetry: false },
      );
      if (result.ok) return true;
      if (result.reasons.charge === "ConditionalCheckFailed") return false;
      // A collision with another write of the tenant's usage: the caller may simply try again.
      if (Object.values<string>(result.reasons).every((r) => r === "None" || r === "TransactionConflict"))
        throw new RetryLater(`image ${image.imageId} collided with another write of its tenant's usage`);
      throw new Error(`creating image ${image.imageId} failed: ${JSON.stringify(result.reasons)}`);
    },
    getImage,
    listImages: (tenantId) => t.byPrefix(entities.image, keys.tenant(tenantId).pk, keys.imagePrefix),
    async addVersion(tenantId, imageId, make) {
      // Optimistic: bump latestVersion only if nobody else did, in the same transaction as the version.
      for (let attempt = 0; attempt < 20; attempt++) {
        const image = await getImage(tenantId, imageId);
        if (!image) throw new Error(`image ${imageId} vanished`);
        const version = make(image.latestVersion + 1);
        const result = await transact(
          t.doc,
          {
            image: {
              Update: {
                TableName: t.name,
                Key: keys.image(tenantId, imageId),
                UpdateExpression: "SET latestVersion = :next",
                ConditionExpression: "latestVersion = :current",
                ExpressionAttributeValues: { ":next": version.version, ":current": image.latestVersion },
              },
            },
            version: {
              Put: {
                TableName: t.name,
                Item: entities.imageVersion.toItem(version),
                ConditionExpression: "attribute_not_exists(pk)",
              },
            },
          },
          { conflictIsRetry: false },
        );
        if (result.ok) return version;
      }
      throw new Error(`could not allocate a version of image ${imageId}: too much contention`);
    },
    getVersion: (tenantId, imageId, n) => t.get(entities.imageVersion, keys.version(tenantId, imageId, n)),
    listVersions: (tenantId, imageId) =>
      t.byPrefix(entities.imageVersion, keys.tenant(tenantId).pk, keys.versionPrefix(imageId)),
    async completeVersion(tenantId, imageId, n, result) {
      // Only a PUBLISHING version completes: a late or repeated import changes nothing.
      const { sets, names, values } = assignments(result);
      await t.tryUpdate({
        Key: keys.version(tenantId, imageId, n),
        // A completed version leaves the watch index (only PUBLISHING ones are in it).
        UpdateExpression: `SET ${sets.join(", ")} REMOVE ${watchIndex.pk}, ${watchIndex.sk}`,
        ConditionExpression: "#state = :publishing",
        ExpressionAttributeNames: { ...names, "#state": "state" },
        ExpressionAttributeValues: { ...values, ":publishing": "PUBLISHING" },
      });
    },
    async retireVersion(tenantId, imageId, n, at) {
      await t.doc.send(
        new UpdateCommand({
          TableName: t.name,
          Key: keys.version(tenantId, imageId, n),
          UpdateExpression: "SET retiredAt = if_not_exists(retiredAt, :at)",
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeValues: { ":at": at },
        }),
      );
    },
    // A query of the sparse watch index (PUBLISHING versions only), never a scan.
    listPublishingBefore: (createdBefore) => t.watching(entities.imageVersion, "PUBLISHING", createdBefore),
    async removeVersion(tenantId, imageId, n) {
      await t.remove(keys.version(tenantId, imageId, n));
    },
  };
}
