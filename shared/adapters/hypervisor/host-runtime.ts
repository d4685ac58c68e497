import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { HostSettings } from "../../config.ts";
import type { HostRuntime } from "../../ports/index.ts";
import { guestKernelAppend } from "./guest-boot.ts";
import { QemuHypervisor } from "./qemu.ts";

/**
 * A short run dir for a data dir: QEMU's unix sockets live there, and their paths may not pass
 * 107 bytes, which a data dir deep in a home folder would.
 */
export const vmRunDir = (dataDir: string) =>
  join(tmpdir(), `pristine-vms-${createHash("sha256").update(resolve(dataDir)).digest("hex").slice(0, 10)}`);

/** The VMs of a host agent, on QEMU (PRISTINE_HYPERVISOR=qemu). */
export function qemuHostRuntime(
  settings: HostSettings,
  datastoreIds: string[],
  log?: (line: string) => void,
): HostRuntime {
  return {
    hostId: settings.hostId,
    hypervisor: new QemuHypervisor({
      runDir: settings.runDir,
      vncHost: settings.address,
      ...(settings.qemuBinary ? { binary: settings.qemuBinary } : {}),
      ...(log ? { log } : {}),
    }),
    address: settings.address,
    vm: {
      memoryMiB: settings.vmMemoryMiB,
      ...(settings.bootFiles ? { bootFiles: { ...settings.bootFiles, append: guestKernelAppend } } : {}),
      websocket: settings.websocket,
    },
    datastoreIds,
    running: new Map(),
  };
}
