import type { Desktop, ImageSource, ImageVersion } from "../domain/model.ts";

export interface ImportedImage {
  sha256: string;
  virtualSizeBytes: number;
  fileBytes: number;
}

/** Where desktop disks live. The first adapter is qcow2 + qemu-img; vSphere/Proxmox/EBS fit the same shape. */
export interface StorageDriver {
  /**
   * Checks a tenant's publish source before anything is stored; throws a 400 DomainError naming
   * the problem (never a server path). A tenant reads only its own import folder. Answers the
   * disk's virtual size (what each desktop on it will reserve).
   */
  validateSource(tenantId: string, source: ImageSource): Promise<{ virtualSizeBytes: number }>;
  /** Imports a source disk into the region's image store (idempotent: the same target is rewritten). */
  importImage(
    version: Pick<ImageVersion, "tenantId" | "imageId" | "version" | "source">,
  ): Promise<ImportedImage>;
  removeImage(version: Pick<ImageVersion, "tenantId" | "imageId" | "version">): Promise<void>;
  /**
   * Makes sure the read-only replica of a version exists on a datastore; created once, and only
   * kept when its sha256 matches the version's. `created` is true for the one call that wrote it.
   */
  ensureReplica(
    version: Pick<ImageVersion, "tenantId" | "imageId" | "version" | "sha256">,
    datastoreId: string,
  ): Promise<{ created: boolean }>;
  removeReplica(
    version: Pick<ImageVersion, "tenantId" | "imageId" | "version">,
    datastoreId: string,
  ): Promise<void>;
  /** Whether the replica of a version is in place on a datastore. */
  hasReplica(
    version: Pick<ImageVersion, "tenantId" | "imageId" | "version">,
    datastoreId: string,
  ): Promise<boolean>;
  /** Creates (or recreates, empty) the desktop's delta of its generation on top of its replica. */
  createLinkedClone(desktop: CloneTarget): Promise<void>;
  /** Creates (or recreates) the desktop's disk of its generation as a complete copy of its image version. */
  createFullClone(desktop: CloneTarget): Promise<void>;
  /**
   * Deletes the desktop's disk files: of every generation but `keepGeneration`, or only the one of
   * `onlyGeneration`, or all of them.
   */
  deleteDesktopDisk(
    desktop: DesktopDiskRef,
    opts?: { keepGeneration?: number; onlyGeneration?: number },
  ): Promise<void>;
  /** The file of the desktop's disk of its current generation (a host boots its VM from it). */
  diskPath(desktop: DesktopDiskRef): string;
  /** Bytes the desktop's delta of its current generation occupies on its datastore (0 when absent). */
  deltaBytes(desktop: DesktopDiskRef): Promise<number>;
  /** Whether the desktop's disk of its current generation is in place. */
  hasDesktopDisk(desktop: DesktopDiskRef): Promise<boolean>;
  /** Every desktop disk file on a datastore, whoever's (the datastore sweep's inventory). */
  listDesktopDisks(datastoreId: string): Promise<DesktopDiskFile[]>;
  /** Removes one file the inventory listed (nothing else: the name must be a desktop disk's). */
  removeDesktopDiskFile(file: DesktopDiskFile): Promise<void>;
  /** Bytes the replica occupies on its datastore (0 when absent). */
  replicaBytes(
    version: Pick<ImageVersion, "tenantId" | "imageId" | "version">,
    datastoreId: string,
  ): Promise<number>;
}

export type DesktopDiskRef = Pick<
  Desktop,
  "tenantId" | "poolId" | "desktopId" | "datastoreId" | "generation"
>;

export type CloneTarget = DesktopDiskRef & Pick<Desktop, "imageId" | "imageVersion">;

/** A desktop disk file found on a datastore: whose it says it is, and how old it is. */
export interface DesktopDiskFile {
  datastoreId: string;
  tenantId: string;
  poolId: string;
  desktopId: string;
  /** The generation in its name (0: a disk from before fencing). */
  generation: number;
  /** The file's own name in its pool's folder. */
  name: string;
  /** A temporary file of a write in progress (or of a worker that died writing). */
  partial: boolean;
  modifiedAt: string;
}
