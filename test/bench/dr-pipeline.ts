/**
 * The DR bench's baseline: the data path of a change alone, with Pristine's own adapters and the
 * same emulators, but no control plane (no DynamoDB, no queues, no workers). Each change is
 * committed in a primary-side store, uploaded into the DR bucket, downloaded and applied (checksum
 * verified) in a DR-side store, as the workers do; `concurrency` changes run at a time. The time
 * for all of them bounds what RPO p99 can be on this machine with this data path, and the RPO
 * divided by it is what the control plane adds.
 */
import { execFile } from "node:child_process";
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { qcow2UserDataStore } from "../../shared/adapters/storage/user-data-store.ts";
import type { PeerRegion, ReplicaInbox } from "../../shared/ports/index.ts";
import { perChange } from "./dr-stages.ts";
import { runLimited } from "./report.ts";

const run = promisify(execFile);

export interface DataPathOptions {
  dir: string;
  peer: PeerRegion;
  inbox: ReplicaInbox;
  users: number;
  concurrency: number;
  sizeBytes: number;
  /** qemu-io commands that make one session's change (the storm's writes). */
  writes: string[];
  /** qemu-io commands writing what every user's disk holds before the session (none by default). */
  priorWrites?: string[];
}

/**
 * Every user's versions on both sides and session overlay on the source, as the first user's
 * (written once with qemu-io, then copied; not timed).
 */
async function prepareUsers(opts: DataPathOptions) {
  const source = qcow2UserDataStore(join(opts.dir, "primary"));
  const target = qcow2UserDataStore(join(opts.dir, "dr"));
  const tenantId = "baseline";
  const refs = Array.from({ length: opts.users }, (_, i) => ({ tenantId, userId: `user-${i}` }));
  // One session's change, written once and copied to every user's overlay (not timed).
  const first = refs[0];
  if (!first) throw new Error("the data path needs at least one user");
  await source.ensureBlank(first, opts.sizeBytes);
  // Prior data is a version the store committed (with its region digests), as a user's would be.
  let base = 0;
  if (opts.priorWrites) {
    const prior = await source.ensureOverlay(first, "prior", 0);
    await run("qemu-io", ["-f", "qcow2", ...opts.priorWrites, prior]);
    await source.commitOverlay(first, "prior", 0);
    await source.removeOverlay(first, "prior");
    await source.removeDelta(first, 1);
    base = 1;
  }
  const change = await source.ensureOverlay(first, "s", base);
  await run("qemu-io", ["-f", "qcow2", ...opts.writes, change]);
  const firstDir = join(opts.dir, "primary", tenantId, first.userId);
  const versionFiles = (await readdir(firstDir)).filter((f) => f.startsWith("disk-v"));
  for (const ref of refs) {
    // Every user's versions on both sides are the first one's (blank, or holding the prior
    // data); every session's overlay holds the first one's change.
    const copies: [string, string][] = [
      ...versionFiles.map((f): [string, string] => [
        join(firstDir, f),
        join(opts.dir, "dr", tenantId, ref.userId, f),
      ]),
      ...(ref === first
        ? []
        : [
            ...versionFiles.map((f): [string, string] => [
              join(firstDir, f),
              join(opts.dir, "primary", tenantId, ref.userId, f),
            ]),
            [change, source.overlayPath(ref, "s")] as [string, string],
          ]),
    ];
    for (const [from, to] of copies) {
      await mkdir(dirname(to), { recursive: true });
      await copyFile(from, to);
    }
  }
  return { source, target, refs, base };
}

type Ref = { tenantId: string; userId: string };

/**
 * A change's way through the data path, step by step (commit, upload, download, apply), each a
 * function of the user: the pipelined run calls them in turn for each change, the run by step
 * calls each one for every change before the next.
 */
function dataPathSteps(opts: DataPathOptions, prepared: Awaited<ReturnType<typeof prepareUsers>>) {
  const { source, target, base } = prepared;
  const key = (ref: Ref) => `bench-baseline/${ref.userId}/v${base + 1}.qcow2`;
  const committed = new Map<string, string>();
  const fetched = new Map<string, Awaited<ReturnType<ReplicaInbox["fetchFile"]>>>();
  return [
    [
      "commit (overlay becomes the version, checksum)",
      async (ref: Ref) => {
        committed.set(ref.userId, (await source.commitOverlay(ref, "s", base)).sha256);
      },
    ],
    [
      "upload delta (S3 PutObject)",
      async (ref: Ref) => {
        await opts.peer.putFile(key(ref), source.deltaPath(ref, base + 1));
      },
    ],
    [
      "download delta (S3 GetObject to the store)",
      async (ref: Ref) => {
        const file = await opts.inbox.fetchFile(key(ref), target.incomingDeltaPath(ref, base + 1), {
          sync: false,
        });
        fetched.set(ref.userId, file);
      },
    ],
    [
      "apply (delta becomes the version, verify)",
      async (ref: Ref) => {
        const file = fetched.get(ref.userId);
        if (!file) throw new Error(`baseline: ${ref.userId}'s delta was not downloaded`);
        try {
          const built = await target.applyDelta(ref, base, file.path, opts.sizeBytes);
          if (built.sha256 !== committed.get(ref.userId))
            throw new Error(`baseline: ${ref.userId}'s checksum differs`);
          await built.install();
        } finally {
          await file.done();
          await opts.inbox.remove(key(ref));
        }
      },
    ],
  ] as const;
}

/** Answers the wall time (ms) of `users` changes through the data path, and each one's own (ms). */
export async function dataPathBaseline(
  opts: DataPathOptions,
): Promise<{ totalMs: number; eachMs: number[] }> {
  const prepared = await prepareUsers(opts);
  const steps = dataPathSteps(opts, prepared);
  const eachMs: number[] = [];
  const started = performance.now();
  await runLimited(prepared.refs, opts.concurrency, async (ref) => {
    const t = performance.now();
    for (const [, step] of steps) await step(ref);
    eachMs.push(performance.now() - t);
  });
  const totalMs = performance.now() - started;
  await rm(opts.dir, { recursive: true, force: true });
  return { totalMs, eachMs };
}

/**
 * The CPU a change costs in each step of the data path, by process (ms per change): each step
 * runs for every change (`concurrency` at a time) before the next, between two readings of the
 * process tree. Their sum, over the machine's cores, is the shortest time the data path of N
 * changes can take here even with nothing else running.
 */
export async function dataPathCpuByStep(
  opts: DataPathOptions,
  cpu: (into: Map<string, number>) => Promise<number>,
): Promise<{ step: string; cpuMsPerChange: Record<string, number> }[]> {
  const prepared = await prepareUsers(opts);
  const out = [];
  for (const [step, run] of dataPathSteps(opts, prepared)) {
    const before = new Map<string, number>();
    await cpu(before);
    await runLimited(prepared.refs, opts.concurrency, run);
    const after = new Map<string, number>();
    await cpu(after);
    out.push({ step, cpuMsPerChange: perChange(after, before, opts.users) });
  }
  await rm(opts.dir, { recursive: true, force: true });
  return out;
}
