import { copyFile, mkdir, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildGuestImage } from "../guest/build.ts";
import { startDynamoDbLocal, startFauxqsServer, waitFor } from "../local/emulators.ts";
import { startRegion } from "../local/region.ts";
import { ConsoleSession } from "../test/support/vm.ts";

const guest = await buildGuestImage({ cacheDir: join(tmpdir(), "pristine-guest-cache") });
const [dynamo, fauxqs] = await Promise.all([startDynamoDbLocal(), startFauxqsServer()]);
const dataDir = await mkdtemp(join(tmpdir(), "pristine-dbg-"));
const operatorKey = "prs_op_debug";
const region = await startRegion({ name: "dbg", dynamodbEndpoint: dynamo.endpoint, sqsEndpoint: fauxqs.endpoint, dataDir, operatorKey, hypervisor: "qemu", guestDir: guest.dir, reconcileEveryMs: 0, hostHeartbeatMs: 1000 });
const api = async (method: string, path: string, key: string, body?: unknown) => {
  const res = await fetch(`${region.apiUrl}${path}`, { method, headers: { authorization: `Bearer ${key}`, ...(body ? { "content-type": "application/json" } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
  const t = await res.text();
  return { status: res.status, body: t ? JSON.parse(t) : undefined };
};
try {
  const t = (await api("POST", "/v1/admin/tenants", operatorKey, { name: "t" })).body;
  const key = t.apiKey;
  const folder = join(dataDir, "imports", t.tenantId);
  await mkdir(folder, { recursive: true });
  await copyFile(guest.disk, join(folder, "d.qcow2"));
  const img = (await api("POST", "/v1/images", key, { name: "g" })).body;
  await api("POST", `/v1/images/${img.imageId}/versions`, key, { source: { path: "d.qcow2" } });
  await waitFor("image", async () => (await api("GET", `/v1/images/${img.imageId}`, key)).body.versions[0]?.state === "READY", 60000);
  const pool = (await api("POST", "/v1/pools", key, { name: "p", imageId: img.imageId, size: 1 })).body;
  await waitFor("ready", async () => (await api("GET", `/v1/pools/${pool.poolId}`, key)).body.desktopCounts.AVAILABLE === 1, 120000);
  console.log("POOL READY");
  const s = (await api("POST", `/v1/pools/${pool.poolId}/logons`, key, { userId: "alice" })).body;
  console.log("LOGON", JSON.stringify(s));
  for (let i = 0; i < 20; i++) {
    const got = (await api("GET", `/v1/sessions/${s.sessionId}`, key)).body;
    const ud = await region.app.ports.userData.get({ tenantId: t.tenantId, userId: "alice" });
    console.log("SESSION", got.connection?.state, got.userData?.state, "plugged", ud?.pluggedInto);
    if (ud?.pluggedInto) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const c = new ConsoleSession(await region.host!.runtime.hypervisor.console(s.desktopId));
  console.log("CONSOLE", JSON.stringify(await c.run("true")));
  for (let i = 0; i < 30; i++) {
    const m = await c.run("mountpoint -q /home/user");
    console.log("MOUNTPOINT", m.status);
    if (m.status === 0) break;
    await new Promise((r) => setTimeout(r, 2000));
  }
  console.log("LOG", JSON.stringify(await c.run("cat /run/pristine/agent.log; cat /proc/mounts; ps")));
} finally {
  await region.stop();
  await Promise.all([dynamo.stop(), fauxqs.stop()]);
}
