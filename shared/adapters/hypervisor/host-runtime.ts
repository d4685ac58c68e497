import type { HostSettings } from "../../config.ts";
import type { HostRuntime } from "../../ports/index.ts";
import { guestKernelAppend } from "./guest-boot.ts";
import { QemuHypervisor } from "./qemu.ts";

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
