/**
 * The one state machine for desktops (DESIGN.md §1). Repositories turn every transition into a
 * conditional write on the `from` state, so two writers can never both move a desktop.
 */
export const desktopStates = [
  "PROVISIONING",
  /** The disk is ready and the desktop's VM is booting; AVAILABLE once its agent says Desktop Ready. */
  "STARTING",
  "AVAILABLE",
  /** Free, its VM powered off (the disk kept): a self-sizing pool keeps only `poweredOnSpare` running. */
  "STOPPED",
  "ASSIGNED",
  "REFRESHING",
  "RECOMPOSING",
  /** Its host stopped answering: withdrawn from assignment until the host is back. */
  "UNREACHABLE",
  "DELETING",
  "ERROR",
] as const;
export type DesktopState = (typeof desktopStates)[number];

/**
 * The states a job must move a desktop out of (ERROR: the replace job). A desktop that stays in
 * one longer than any job takes was left behind by a worker that died; the reconciler finds these
 * through a sparse index, never a scan.
 */
export const transitionalStates = [
  "PROVISIONING",
  "STARTING",
  "REFRESHING",
  "RECOMPOSING",
  "DELETING",
  "ERROR",
] as const satisfies readonly DesktopState[];

export const isTransitional = (s: DesktopState) =>
  (transitionalStates as readonly DesktopState[]).includes(s);

/*
 * Desktops on a datastore without a host (their VMs run elsewhere) go from a disk job straight to
 * AVAILABLE; desktops whose host runs their VMs pass through STARTING, and come back to it when
 * their VM must be started again (it died while free, or its host returned).
 */
const transitions: Record<DesktopState, readonly DesktopState[]> = {
  PROVISIONING: ["AVAILABLE", "STARTING", "ERROR", "DELETING"],
  STARTING: ["AVAILABLE", "ERROR", "DELETING", "UNREACHABLE"],
  AVAILABLE: ["ASSIGNED", "RECOMPOSING", "STARTING", "STOPPED", "UNREACHABLE", "DELETING", "ERROR"],
  STOPPED: ["STARTING", "DELETING", "ERROR"],
  ASSIGNED: ["REFRESHING", "DELETING", "AVAILABLE"],
  REFRESHING: ["AVAILABLE", "STARTING", "ERROR", "DELETING"],
  RECOMPOSING: ["AVAILABLE", "STARTING", "ERROR", "DELETING"],
  UNREACHABLE: ["STARTING", "AVAILABLE", "DELETING"],
  DELETING: [],
  ERROR: ["DELETING", "PROVISIONING"],
};

export function canTransition(from: DesktopState, to: DesktopState): boolean {
  return transitions[from].includes(to);
}

export function assertTransition(from: DesktopState, to: DesktopState): void {
  if (!canTransition(from, to)) throw new Error(`illegal desktop transition ${from} -> ${to}`);
}

export function emptyStateCounts(): Record<DesktopState, number> {
  return Object.fromEntries(desktopStates.map((s) => [s, 0])) as Record<DesktopState, number>;
}
