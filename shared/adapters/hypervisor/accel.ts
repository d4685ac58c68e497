/**
 * Which accelerator QEMU runs a VM with: KVM only when /dev/kvm is usable and the CPU advertises
 * vmx/svm, else TCG (PRISTINE_QEMU_ACCEL=kvm|tcg overrides). Without vmx/svm a KVM guest does not
 * boot, so /dev/kvm alone is not enough.
 */
import { constants } from "node:fs";
import { access, readFile } from "node:fs/promises";

export type Accel = "kvm" | "tcg";

/** KVM needs both a usable /dev/kvm and hardware virtualisation (vmx or svm in the CPU flags). */
export function chooseAccel(
  override: string | undefined,
  kvmDevice: boolean,
  cpuinfo: string,
): { accel: Accel; why: string } {
  if (override) {
    if (override !== "kvm" && override !== "tcg") {
      throw new Error(`PRISTINE_QEMU_ACCEL must be kvm or tcg, not ${JSON.stringify(override)}`);
    }
    return { accel: override, why: "PRISTINE_QEMU_ACCEL" };
  }
  const hw = /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
  if (kvmDevice && hw) return { accel: "kvm", why: "/dev/kvm is usable and the CPU has vmx/svm" };
  if (!kvmDevice) return { accel: "tcg", why: "/dev/kvm is missing or not accessible" };
  return { accel: "tcg", why: "the CPU has no vmx/svm flag (nested virtualisation is off)" };
}

export async function detectAccel(env = process.env): Promise<{ accel: Accel; why: string }> {
  const kvmDevice = await access("/dev/kvm", constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  return chooseAccel(env.PRISTINE_QEMU_ACCEL || undefined, kvmDevice, cpuinfo);
}
