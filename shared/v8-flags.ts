/**
 * V8 flags of every Pristine process: Lambda functions, local regions and agents, the bench, and
 * the local S3 emulator's process.
 *
 * `--external-memory-accounted-in-global-limit`: memory outside V8's heap (Buffers: file reads,
 * socket chunks) counts toward the heap's global limit instead of a separate external limit of a
 * few tens of MiB. Under that limit every few MiB moved started a full mark-compact of the whole
 * heap, though the scavenger frees such short-lived Buffers anyway. DR bench, runs alternated with
 * and without: the data path's CPU per change 122-139 -> 87-106 ms (an 8 MiB upload and download
 * cost about half), for a peak resident memory of the regions' process 454-465 -> 502-564 MiB.
 */
import { setFlagsFromString } from "node:v8";

export const V8_FLAGS: readonly string[] = ["--external-memory-accounted-in-global-limit"];

/**
 * Sets them in this process, before it moves any data. At run time rather than on the command
 * line because Lambda's runtime writes that line (NODE_OPTIONS may not carry V8 flags), and a
 * flag that a later V8 no longer knows is then a warning, not a process that cannot start.
 */
export function applyV8Flags(): void {
  for (const flag of V8_FLAGS) setFlagsFromString(flag);
}
