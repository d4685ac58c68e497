/**
 * Where a user-data change's time goes on its way to the DR region. The bench watches the two
 * regions' ports (the same objects the workers call) and the content checksum's timing channel,
 * and splits each change's RPO into the stages the code really has.
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { readdir, readFile } from "node:fs/promises";
import { basename, dirname } from "node:path";
import type { Region } from "../../local/region.ts";
import type { ChecksumTiming } from "../../shared/adapters/storage/content-checksum.ts";
import { percentile } from "./report.ts";

type Point =
  | "logoff"
  | "commitStart"
  | "commitEnd"
  | "shipQueued"
  | "uploadStart"
  | "uploadEnd"
  | "applyQueued"
  | "downloadStart"
  | "downloadEnd"
  | "applyStart"
  | "applyEnd"
  | "replicated";

/** Stages in order: [label, from, to]; each change's RPO is their sum. */
const stages: [string, Point, Point][] = [
  ["logoff -> commit starts (logoff, user-data FIFO queue)", "logoff", "commitStart"],
  ["commit (overlay becomes the version, checksum, keep delta)", "commitStart", "commitEnd"],
  ["record change, queue the ship", "commitEnd", "shipQueued"],
  ["replication queue wait (source)", "shipQueued", "uploadStart"],
  ["upload delta", "uploadStart", "uploadEnd"],
  ["send apply to peer", "uploadEnd", "applyQueued"],
  ["replication queue wait (DR)", "applyQueued", "downloadStart"],
  ["download delta", "downloadStart", "downloadEnd"],
  ["apply (delta becomes the version, verify)", "downloadEnd", "applyEnd"],
  ["install, record, acknowledge", "applyEnd", "replicated"],
];

const userDeltaKey = /^userdata\/[^/]+\/([^/]+)\/v(\d+)\.qcow2$/;
/** A disk version being built: <root>/<tenant>/<user>/disk-v<n>.qcow2.<hex>.tmp at a commit. */
const buildingDisk = /^disk-v(\d+)\.qcow2\.[0-9a-f]+\.tmp$/;
/** A delta being applied where it was downloaded: <root>/<tenant>/<user>/incoming/v<n>.<hex>.qcow2 */
const incomingDelta = /^v(\d+)\.[0-9a-f]+\.qcow2$/;

/** The user and version of a checksum's path, when it is a version being built. */
function buildOf(path: string): string | undefined {
  const built = buildingDisk.exec(basename(path));
  if (built) return `${basename(dirname(path))}#${built[1]}`;
  const incoming = basename(dirname(path)) === "incoming" ? incomingDelta.exec(basename(path)) : null;
  return incoming ? `${basename(dirname(dirname(path)))}#${incoming[1]}` : undefined;
}

export function watchStages(primary: Region, dr: Region) {
  const points = new Map<string, Partial<Record<Point, number>>>();
  const verify = new Map<string, number>();
  const commitChecksum = new Map<string, number>();
  const at = (userId: string, version: number, p: Point, t = Date.now()) => {
    const id = `${userId}#${version}`;
    const entry = points.get(id) ?? {};
    entry[p] ??= t;
    points.set(id, entry);
  };

  const src = primary.app.ports;
  const dst = dr.app.ports;
  const commitOverlay = src.userDataStore.commitOverlay.bind(src.userDataStore);
  src.userDataStore.commitOverlay = async (ref, sessionId, from) => {
    at(ref.userId, from + 1, "commitStart");
    const out = await commitOverlay(ref, sessionId, from);
    at(ref.userId, from + 1, "commitEnd");
    return out;
  };
  const send = src.replication.send.bind(src.replication);
  src.replication.send = async (messages, opts) => {
    await send(messages, opts);
    for (const m of messages) if (m.kind === "ship-user-data") at(m.userId, m.version, "shipQueued");
  };
  const peer = src.peer;
  if (!peer) throw new Error("the primary has no peer");
  const putFile = peer.putFile.bind(peer);
  peer.putFile = async (key, path) => {
    const m = userDeltaKey.exec(key);
    if (m) at(m[1] as string, Number(m[2]), "uploadStart");
    const bytes = await putFile(key, path);
    if (m) at(m[1] as string, Number(m[2]), "uploadEnd");
    return bytes;
  };
  const peerSend = peer.send.bind(peer);
  peer.send = async (messages) => {
    await peerSend(messages);
    for (const m of messages) if (m.kind === "apply-user-data") at(m.userId, m.version, "applyQueued");
  };
  const fetchFile = dst.inbox.fetchFile.bind(dst.inbox);
  dst.inbox.fetchFile = async (key, destination, opts) => {
    const m = userDeltaKey.exec(key);
    if (m) at(m[1] as string, Number(m[2]), "downloadStart");
    const out = await fetchFile(key, destination, opts);
    if (m) at(m[1] as string, Number(m[2]), "downloadEnd");
    return out;
  };
  const applyDelta = dst.userDataStore.applyDelta.bind(dst.userDataStore);
  dst.userDataStore.applyDelta = async (ref, from, file, size) => {
    at(ref.userId, from + 1, "applyStart");
    const out = await applyDelta(ref, from, file, size);
    at(ref.userId, from + 1, "applyEnd");
    return out;
  };

  const srcRoot = `${primary.app.config.dr?.userDataPath}/`;
  const dstRoot = `${dr.app.config.dr?.userDataPath}/`;
  const onChecksum = (message: unknown) => {
    const t = message as ChecksumTiming;
    const id = buildOf(t.path);
    if (!id) return;
    const into = t.path.startsWith(dstRoot)
      ? verify
      : t.path.startsWith(srcRoot)
        ? commitChecksum
        : undefined;
    into?.set(id, (into.get(id) ?? 0) + t.endedAt - t.startedAt);
  };
  subscribe("pristine:content-checksum", onChecksum);

  return {
    logoff: (userId: string, t: number) => at(userId, 1, "logoff", t),
    replicated: (userId: string, version: number, t: number) => at(userId, version, "replicated", t),
    stop: () => unsubscribe("pristine:content-checksum", onChecksum),
    /** Rows of [stage, p50, p99] in ms, over the changes that went the whole way. */
    table(): [string, number, number][] {
      const whole = [...points].filter(([, p]) => stages.every(([, a, b]) => p[a] && p[b]));
      const row = (label: string, values: number[]): [string, number, number] => {
        const sorted = values.sort((a, b) => a - b);
        return [label, Math.round(percentile(sorted, 50)), Math.round(percentile(sorted, 99))];
      };
      const rows = stages.map(([label, a, b]) =>
        row(
          label,
          whole.map(([, p]) => (p[b] as number) - (p[a] as number)),
        ),
      );
      rows.push(
        row(
          "  of which: checksum at commit",
          whole.map(([id]) => commitChecksum.get(id) ?? 0),
        ),
      );
      rows.push(
        row(
          "  of which: verify (checksum) at apply",
          whole.map(([id]) => verify.get(id) ?? 0),
        ),
      );
      rows.push(
        row(
          "RPO (sum)",
          whole.map(([, p]) => (p.replicated as number) - (p.logoff as number)),
        ),
      );
      return rows;
    },
  };
}

/**
 * A figure per change by process (CPU ms, page faults) between two readings of the process tree
 * over `changes` changes.
 */
export const perChange = (after: Map<string, number>, before: Map<string, number>, changes: number) =>
  Object.fromEntries(
    [...after].map(([name, n]) => [name, Math.round((n - (before.get(name) ?? 0)) / changes)]),
  ) as Record<string, number>;

/**
 * CPU time (ms) of this process and every process under it (emulators, the launcher, and through
 * its children's totals the qemu-img runs that ended): what a stretch of the bench cost the
 * machine, whatever else shares it. With `peakRssMiB`, each process's peak resident memory so far
 * too (the largest of a name's processes); with `kernel`, by name, the part of that CPU spent in
 * the kernel and the minor page faults so far (on a machine where a page fault is dear, what
 * fresh memory costs).
 */
export async function treeCpuMs(
  pid = process.pid,
  byName?: Map<string, number>,
  peakRssMiB?: Map<string, number>,
  kernel?: { cpuMs: Map<string, number>; pageFaults: Map<string, number> },
): Promise<number> {
  const tick = 10; // USER_HZ is 100 on Linux.
  const read = async (p: number): Promise<number> => {
    try {
      const stat = await readFile(`/proc/${p}/stat`, "utf8");
      // Fields after the command name (which may hold spaces): utime is the 14th field.
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const own = [11, 12, 13, 14].reduce((sum, i) => sum + Number(f[i]), 0) * tick;
      const cmd = await readFile(`/proc/${p}/cmdline`, "utf8").catch(() => "");
      const name =
        p === pid
          ? "bench"
          : cmd.includes("local/agent.ts")
            ? "clone workers"
            : cmd.includes("fauxqs")
              ? "fauxqs"
              : cmd.includes("qemu-img") || cmd.includes("node:readline")
                ? "launcher, qemu-img"
                : cmd.includes("DynamoDBLocal")
                  ? "dynamodb-local"
                  : stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      byName?.set(name, (byName.get(name) ?? 0) + own);
      if (kernel) {
        // stime and cstime; minflt and cminflt (the 10th and 11th fields).
        const add = (into: Map<string, number>, n: number) => into.set(name, (into.get(name) ?? 0) + n);
        add(kernel.cpuMs, (Number(f[12]) + Number(f[14])) * tick);
        add(kernel.pageFaults, Number(f[7]) + Number(f[8]));
      }
      if (peakRssMiB) {
        const status = await readFile(`/proc/${p}/status`, "utf8").catch(() => "");
        const kib = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
        peakRssMiB.set(name, Math.max(peakRssMiB.get(name) ?? 0, Math.round(kib / 1024)));
      }
      const tasks = await readdir(`/proc/${p}/task`);
      const kids = (
        await Promise.all(tasks.map((t) => readFile(`/proc/${p}/task/${t}/children`, "utf8").catch(() => "")))
      )
        .join(" ")
        .split(/\s+/)
        .filter(Boolean)
        .map(Number);
      return own + (await Promise.all(kids.map(read))).reduce((a, b) => a + b, 0);
    } catch {
      return 0;
    }
  };
  return read(pid);
}
