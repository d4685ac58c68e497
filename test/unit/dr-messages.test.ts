import { describe, expect, it } from "vitest";
import { replicationKeys, replicationMessageSchema } from "../../shared/messages/replication.ts";
import { userDataGroup, userDataJobKey, userDataJobSchema } from "../../shared/messages/user-data-job.ts";

const sha = "a".repeat(64);

describe("user-data jobs", () => {
  it("group by (tenant, user), so one user's attach and commit never run at once", () => {
    const attach = {
      kind: "attach-user-data",
      tenantId: "ten-1",
      userId: "alice",
      sessionId: "ses-1.p.d",
    } as const;
    const commit = { ...attach, kind: "commit-user-data" } as const;
    expect(userDataGroup(attach)).toBe(userDataGroup(commit));
    expect(userDataGroup({ ...attach, userId: "bob" })).not.toBe(userDataGroup(attach));
    expect(userDataJobKey(attach)).not.toBe(userDataJobKey(commit));
    expect(userDataJobSchema.safeParse(attach).success).toBe(true);
    expect(userDataJobSchema.safeParse({ ...attach, sessionId: "" }).success).toBe(false);
  });
});

describe("replication messages", () => {
  it("an apply names its version, the source's checksum and the artifact", () => {
    const apply = {
      kind: "apply-user-data",
      tenantId: "ten-1",
      userId: "alice",
      version: 2,
      sha256: sha,
      sizeBytes: 1024,
      key: replicationKeys.userDataDelta("ten-1", "alice", 2),
      committedAt: new Date().toISOString(),
      sourceRegion: "primary",
    };
    expect(replicationMessageSchema.safeParse(apply).success).toBe(true);
    expect(replicationMessageSchema.safeParse({ ...apply, version: 0 }).success).toBe(false);
    expect(replicationMessageSchema.safeParse({ ...apply, sha256: "nope" }).success).toBe(false);
    expect(apply.key).toBe("userdata/ten-1/alice/v2.qcow2");
  });
});
