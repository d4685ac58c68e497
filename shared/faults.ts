/**
 * Named points in long jobs where a fault test can crash the worker or hold it. In production
 * nothing is set and a checkpoint costs one comparison.
 *
 * - `PRISTINE_CRASH_AT=<name>` makes the process exit at that point, as a killed worker would
 *   (the fault suite runs workers as child processes with it).
 * - In-process tests may install a hook (e.g. to stall one delivery of a job at a point while
 *   another runs).
 */
type Hook = (name: string, ids: Record<string, unknown>) => Promise<void> | void;

let hook: Hook | undefined;

export async function checkpoint(name: string, ids: Record<string, unknown> = {}): Promise<void> {
  if (process.env.PRISTINE_CRASH_AT === name) {
    process.stderr.write(`[faults] crashing at ${name} ${JSON.stringify(ids)}\n`);
    process.exit(137);
  }
  if (hook) await hook(name, ids);
}

export function setCheckpointHook(next: Hook | undefined): void {
  hook = next;
}
