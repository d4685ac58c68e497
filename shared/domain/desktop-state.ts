/**
 * The one state machine for desktops (DESIGN.md §1). Repositories turn every transition into a
 * conditional write on the `from` state, so two writers can never both move a desktop.
 */
export const desktopStates = [
  "PROVISIONING",
  "AVAILABLE",
  "ASSIGNED",
  "REFRESHING",
  "RECOMPOSING",
  "DELETING",
  "ERROR",
] as const;
export type DesktopState = (typeof desktopStates)[number];

const transitions: Record<DesktopState, readonly DesktopState[]> = {
  PROVISIONING: ["AVAILABLE", "ERROR", "DELETING"],
  AVAILABLE: ["ASSIGNED", "RECOMPOSING", "DELETING", "ERROR"],
  ASSIGNED: ["REFRESHING", "DELETING", "AVAILABLE"],
  REFRESHING: ["AVAILABLE", "ERROR", "DELETING"],
  RECOMPOSING: ["AVAILABLE", "ERROR", "DELETING"],
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
