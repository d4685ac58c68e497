/**
 * A running VM's hot-pluggable disks: blockdev-add plus a virtio-blk-pci device to attach, the
 * guest's ACPI eject (DEVICE_DELETED) then blockdev-del to detach, and query-block read back as
 * BlockInfo.
 */
import { stat } from "node:fs/promises";
import type { AttachOptions, BlockInfo } from "../../ports/hypervisor.ts";
import type { QmpClient } from "./qmp.ts";

const diskIdPattern = /^[A-Za-z][A-Za-z0-9_-]{0,23}$/;

export function assertDiskId(diskId: string) {
  if (!diskIdPattern.test(diskId)) throw new Error(`invalid diskId ${JSON.stringify(diskId)}`);
}

export interface QueryBlock {
  device: string;
  qdev?: string;
  inserted?: {
    file: string;
    drv: string;
    ro: boolean;
    backing_file?: string;
    image?: { "full-backing-filename"?: string; "backing-filename"?: string };
  };
}

/** query-block's answer as BlockInfo: only devices with a medium, named by their device id. */
export function toBlockInfo(devices: QueryBlock[]): BlockInfo[] {
  return devices
    .filter((d) => d.inserted)
    .map((d) => {
      const inserted = d.inserted as NonNullable<QueryBlock["inserted"]>;
      // -blockdev drives have no legacy name; their device is the qdev id, or a QOM path to it.
      const device = d.device || /\/machine\/peripheral\/([^/]+)/.exec(d.qdev ?? "")?.[1] || d.qdev || "";
      const backingFile =
        inserted.image?.["full-backing-filename"] ??
        inserted.image?.["backing-filename"] ??
        inserted.backing_file;
      return {
        device,
        file: inserted.file,
        format: inserted.drv,
        readOnly: inserted.ro,
        ...(backingFile ? { backingFile } : {}),
      };
    });
}

export class QemuDisks {
  /** diskId -> image path of the disks attached through attach(). */
  private readonly attached = new Map<string, string>();
  private readonly qmp: QmpClient;
  private readonly timeouts: { commandMs: number; unplugMs: number };

  constructor(qmp: QmpClient, timeouts: { commandMs: number; unplugMs: number }) {
    this.qmp = qmp;
    this.timeouts = timeouts;
  }

  async attach(vmId: string, diskId: string, path: string, opts: AttachOptions = {}): Promise<void> {
    assertDiskId(diskId);
    const attached = this.attached.get(diskId);
    if (attached === path) return;
    if (attached) throw new Error(`VM ${vmId} already has a disk ${diskId} (${attached})`);
    if (!(await stat(path).catch(() => undefined))?.isFile()) throw new Error(`disk ${path} does not exist`);
    const node = `node-${diskId}`;
    const readOnly = opts.readOnly ?? false;
    const timeoutMs = this.timeouts.commandMs;
    // QEMU takes a write lock on the image: a user disk already open in another VM is refused here.
    await this.qmp.execute(
      "blockdev-add",
      {
        driver: opts.format ?? "qcow2",
        "node-name": node,
        "read-only": readOnly,
        discard: "unmap",
        file: { driver: "file", filename: path, "read-only": readOnly },
      },
      { timeoutMs },
    );
    try {
      await this.qmp.execute(
        "device_add",
        { driver: "virtio-blk-pci", id: `disk-${diskId}`, drive: node },
        { timeoutMs },
      );
    } catch (err) {
      await this.qmp.execute("blockdev-del", { "node-name": node }, { timeoutMs }).catch(() => {});
      throw err;
    }
    this.attached.set(diskId, path);
  }

  /** Unplugs a disk once the guest has let go of it; a disk not attached here is left alone. */
  async detach(diskId: string): Promise<void> {
    if (!this.attached.has(diskId)) return;
    const id = `disk-${diskId}`;
    const timeoutMs = this.timeouts.commandMs;
    // Unplugging needs the guest's consent (ACPI eject); DEVICE_DELETED says it happened.
    const deleted = this.qmp.waitForEvent(
      (e) => e.event === "DEVICE_DELETED" && e.data?.device === id,
      this.timeouts.unplugMs,
      `DEVICE_DELETED for ${id} (the guest did not release the disk)`,
    );
    try {
      await this.qmp.execute("device_del", { id }, { timeoutMs });
      await deleted.promise;
    } catch (err) {
      deleted.cancel();
      // Already gone (an earlier detach that timed out while the guest was slow): just clean up.
      if (!/not found/i.test((err as Error).message)) throw err;
    }
    await this.qmp.execute("blockdev-del", { "node-name": `node-${diskId}` }, { timeoutMs });
    this.attached.delete(diskId);
  }

  async info(): Promise<BlockInfo[]> {
    return toBlockInfo(await this.qmp.execute<QueryBlock[]>("query-block"));
  }
}
