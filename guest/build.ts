/**
 * Builds the desktop guest from Debian packages, without root-only tricks (no loop mounts):
 *
 * - vmlinuz: the kernel of Debian's cloud kernel package (fetched with `apt-get download`), which
 *   has the VGA text console the screenshots need; the generic kernel is the fallback.
 * - initrd.img: a gzipped newc cpio written here, with busybox-static, the virtio modules in
 *   dependency order and an /init that mounts /dev/vda and switch_roots into it.
 * - desktop.qcow2: the golden image, an ext4 made with `mke2fs -d` from guest/rootfs plus busybox,
 *   converted to qcow2. The kernel and initrd stay host-side boot files (direct kernel boot).
 *
 * Output goes to <cacheDir> (default $PRISTINE_DATA_DIR/guest, PRISTINE_DATA_DIR defaulting to
 * ./.pristine) with a manifest.json of package versions and file hashes; the .debs are kept in
 * <cacheDir>/debs. A build whose inputs have not changed does nothing. Rebuilding replaces
 * desktop.qcow2, so clone from a copy (the image store) rather than from the cache file itself.
 *
 * `npm run image:build [-- --force]` runs this file.
 */

import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, mkdir, readdir, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { guestKernelAppend } from "../shared/adapters/hypervisor/guest-boot.ts";
import { type CpioEntry, cpioNewc } from "./cpio.ts";
import { planModules } from "./kmod.ts";

const exec = promisify(execFile);
const guestDir = dirname(fileURLToPath(import.meta.url));

/** Bump when the build steps change in a way the guest/ sources do not show. */
const builderVersion = 1;
/** Tried in order; the first whose config passes `kernelProblems` is used. */
const kernelMetapackages = ["linux-image-cloud-amd64", "linux-image-amd64"];
/** virtio_pci pulls in virtio/virtio_ring; button+evdev let acpid see the ACPI power button. */
const wantedModules = ["virtio_pci", "virtio_blk", "virtio_console", "ext4", "button", "evdev"];
const diskSizeMiB = 64;

/**
 * Console on both the screen (tty0) and the serial port (ttyS0, last, so /dev/console is serial);
 * quiet keeps kernel chatter off the screen; consoleblank=0 keeps the screen from blanking;
 * panic=-1 with QEMU's -no-reboot turns a guest panic into a VM exit.
 */
export const guestAppend = guestKernelAppend;

export interface GuestManifest {
  format: 1;
  recipe: string;
  builtAt: string;
  kernel: { metapackage: string; package: string; version: string; release: string; console: string };
  busybox: { package: string; version: string };
  modules: { load: string[]; builtin: string[] };
  append: string;
  disk: { format: "qcow2"; filesystem: "ext4"; virtualSizeMiB: number };
  files: Record<"vmlinuz" | "initrd.img" | "desktop.qcow2", { sha256: string; bytes: number }>;
  debs: Record<string, { file: string; sha256: string }>;
}

export interface GuestImage {
  dir: string;
  kernel: string;
  initrd: string;
  disk: string;
  append: string;
  manifest: GuestManifest;
  /** false when the cache was already up to date. */
  built: boolean;
}

export interface BuildOptions {
  /** Default: $PRISTINE_DATA_DIR/guest (PRISTINE_DATA_DIR defaults to ./.pristine). */
  cacheDir?: string;
  log?: (line: string) => void;
  /** Rebuild even if the cache is up to date (e.g. to pick up a newer Debian kernel). */
  force?: boolean;
}

const installHint: Record<string, string> = {
  "apt-get": "apt",
  "apt-cache": "apt",
  "dpkg-deb": "dpkg",
  mke2fs: "e2fsprogs (1.43 or later, for mke2fs -d)",
  "qemu-img": "qemu-utils",
};

async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  try {
    const { stdout } = await exec(cmd, args, { cwd, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    if (e.code === "ENOENT") {
      throw new Error(`${cmd} is not installed (Debian: apt-get install ${installHint[cmd] ?? cmd})`);
    }
    throw new Error(`${cmd} ${args.join(" ")} failed: ${(e.stderr || e.message).trim()}`);
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Files under dir as [path relative to dir, content], sorted, for hashing and copying. */
async function tree(dir: string): Promise<[string, Buffer][]> {
  const rels = (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((d) => d.isFile())
    .map((d) => relative(dir, join(d.parentPath, d.name)))
    .sort();
  return Promise.all(
    rels.map(async (rel): Promise<[string, Buffer]> => [rel, await readFile(join(dir, rel))]),
  );
}

/** Scripts are executable whatever mode the checkout gave them. */
const modeOf = (data: Buffer) => (data.subarray(0, 2).toString() === "#!" ? 0o755 : 0o644);

/** A hash of everything the build depends on but the Debian packages. */
async function recipeHash(): Promise<string> {
  const hash = createHash("sha256");
  hash.update(
    JSON.stringify({ builderVersion, kernelMetapackages, wantedModules, diskSizeMiB, guestAppend }),
  );
  for (const part of ["initramfs", "rootfs"]) {
    for (const [rel, data] of await tree(join(guestDir, part))) {
      hash.update(`${part}/${rel}\0${data.length}\0`).update(data);
    }
  }
  for (const file of ["build.ts", "cpio.ts", "kmod.ts"]) hash.update(await readFile(join(guestDir, file)));
  return hash.digest("hex");
}

async function upToDate(dir: string, recipe: string): Promise<GuestManifest | undefined> {
  const manifest = await readFile(join(dir, "manifest.json"), "utf8")
    .then((t) => JSON.parse(t) as GuestManifest)
    .catch(() => undefined);
  if (manifest?.format !== 1 || manifest.recipe !== recipe) return undefined;
  for (const [name, f] of Object.entries(manifest.files)) {
    if ((await sha256File(join(dir, name)).catch(() => "")) !== f.sha256) return undefined;
  }
  return manifest;
}

/** "Depends:" of the candidate version, e.g. linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3). */
async function candidate(pkg: string): Promise<{ version: string; depends: string }> {
  const text = await run("apt-cache", ["show", "--no-all-versions", pkg]).catch((err: Error) => {
    throw new Error(
      `${err.message}\nThe package lists may be missing: run apt-get update (as root) and try again.`,
    );
  });
  const field = (name: string) => new RegExp(`^${name}: (.*)$`, "m").exec(text)?.[1] ?? "";
  const version = field("Version");
  if (!version) throw new Error(`apt-cache knows no version of ${pkg}; run apt-get update`);
  return { version, depends: field("Depends") };
}

/** Downloads pkg=version into debsDir once; apt-get checks it against the signed archive index. */
async function download(debsDir: string, pkg: string, version: string, log: (l: string) => void) {
  const file = join(debsDir, `${pkg}_${version.replaceAll(":", "%3a")}_amd64.deb`);
  if (!(await exists(file))) {
    log(`downloading ${pkg} ${version}`);
    const tmp = join(debsDir, `.download-${randomBytes(4).toString("hex")}`);
    await mkdir(tmp, { recursive: true });
    try {
      // As root, apt-get would drop to the _apt user, who cannot write here: keep root for this.
      const sandbox = process.getuid?.() === 0 ? ["-o", "APT::Sandbox::User=root"] : [];
      await run("apt-get", [...sandbox, "download", `${pkg}=${version}`], tmp);
      const [deb] = (await readdir(tmp)).filter((f) => f.endsWith(".deb"));
      if (!deb) throw new Error(`apt-get download ${pkg}=${version} produced no .deb`);
      await rename(join(tmp, deb), file);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  return { file, sha256: await sha256File(file) };
}

function parseKernelConfig(text: string): Map<string, string> {
  const config = new Map<string, string>();
  for (const m of text.matchAll(/^(CONFIG_\w+)=(.*)$/gm)) config.set(m[1] as string, m[2] as string);
  return config;
}

/**
 * What this kernel lacks for the guest, and how its screen shows text. vgacon draws text in the
 * standard VGA's text mode (what QEMU's -vga std starts in); without it a framebuffer console
 * needs a framebuffer driver for that card (bochs DRM or vesafb).
 */
function kernelProblems(config: Map<string, string>): { problems: string[]; console: string } {
  const on = (k: string) => config.get(`CONFIG_${k}`) === "y";
  const available = (k: string) => on(k) || config.get(`CONFIG_${k}`) === "m";
  const problems: string[] = [];
  for (const k of [
    "BLK_DEV_INITRD",
    "RD_GZIP",
    "DEVTMPFS",
    "VT",
    "SERIAL_8250_CONSOLE",
    "HOTPLUG_PCI_ACPI",
  ]) {
    if (!on(k)) problems.push(`CONFIG_${k} is not built in`);
  }
  for (const k of ["VIRTIO_PCI", "VIRTIO_BLK", "VIRTIO_CONSOLE", "EXT4_FS"]) {
    if (!available(k)) problems.push(`CONFIG_${k} is missing`);
  }
  let console = "";
  if (on("VGA_CONSOLE")) console = "vgacon (CONFIG_VGA_CONSOLE=y) in the text mode of -vga std";
  else if (on("FRAMEBUFFER_CONSOLE") && (on("DRM_BOCHS") || on("FB_VESA"))) {
    console = "fbcon on a built-in framebuffer driver for -vga std";
  } else problems.push("no VGA text console (CONFIG_VGA_CONSOLE) nor a built-in framebuffer console");
  return { problems, console };
}

interface Kernel {
  metapackage: string;
  package: string;
  version: string;
  release: string;
  console: string;
  root: string;
  deb: { file: string; sha256: string };
}

async function pickKernel(debsDir: string, work: string, log: (l: string) => void): Promise<Kernel> {
  const rejected: string[] = [];
  for (const metapackage of kernelMetapackages) {
    const meta = await candidate(metapackage);
    const pkg = /(linux-image-[^\s,(]+)/.exec(meta.depends)?.[1];
    if (!pkg) throw new Error(`${metapackage} ${meta.version} depends on no linux-image package`);
    const { version } = await candidate(pkg);
    log(`kernel: ${metapackage} -> ${pkg} ${version}`);
    const deb = await download(debsDir, pkg, version, log);
    const root = join(work, pkg);
    await run("dpkg-deb", ["-x", deb.file, root]);
    const boot = await readdir(join(root, "boot"));
    const configFile = boot.find((f) => f.startsWith("config-"));
    if (!configFile || !boot.includes(`vmlinuz-${configFile.slice(7)}`)) {
      throw new Error(`${pkg} has no /boot/vmlinuz-* with its config-*`);
    }
    const release = configFile.slice("config-".length);
    const config = parseKernelConfig(await readFile(join(root, "boot", configFile), "utf8"));
    const { problems, console } = kernelProblems(config);
    if (problems.length === 0) {
      log(`kernel ${release} fits; the screen shows text through ${console}`);
      return { metapackage, package: pkg, version, release, console, root, deb };
    }
    log(`kernel ${release} does not fit: ${problems.join("; ")}`);
    rejected.push(`${pkg}: ${problems.join("; ")}`);
    await rm(root, { recursive: true, force: true });
  }
  throw new Error(`no Debian kernel fits the guest:\n  ${rejected.join("\n  ")}`);
}

async function modulesDirOf(root: string, release: string): Promise<string> {
  // Debian 12 ships modules under /lib, later releases under /usr/lib.
  for (const dir of [join(root, "lib/modules", release), join(root, "usr/lib/modules", release)]) {
    if (await exists(dir)) return dir;
  }
  throw new Error(`no modules directory for kernel ${release}`);
}

async function buildInitramfs(busybox: Buffer, modulesDir: string, order: { name: string; path: string }[]) {
  const entries: CpioEntry[] = [
    ...["bin", "dev", "etc", "lib", "lib/modules", "newroot", "proc", "sys"].map(
      (path): CpioEntry => ({ type: "dir", path }),
    ),
    // The kernel opens /dev/console for /init before anything mounts devtmpfs.
    { type: "char", path: "dev/console", major: 5, minor: 1 },
    { type: "file", path: "bin/busybox", data: busybox, mode: 0o755 },
    { type: "file", path: "init", data: await readFile(join(guestDir, "initramfs/init")), mode: 0o755 },
    { type: "file", path: "etc/modules", data: Buffer.from(`${order.map((m) => m.name).join("\n")}\n`) },
  ];
  for (const m of order) {
    entries.push({
      type: "file",
      path: `lib/modules/${m.name}.ko`,
      data: await readFile(join(modulesDir, m.path)),
    });
  }
  return gzipSync(cpioNewc(entries), { level: 9 });
}

/** The root filesystem's tree: guest/rootfs, busybox with a link per applet, the usual dirs. */
async function stageRootfs(dir: string, busyboxPath: string) {
  for (const [rel, data] of await tree(join(guestDir, "rootfs"))) {
    await mkdir(dirname(join(dir, rel)), { recursive: true });
    await writeFile(join(dir, rel), data, { mode: modeOf(data) });
    await chmod(join(dir, rel), modeOf(data));
  }
  await mkdir(join(dir, "bin"), { recursive: true });
  await writeFile(join(dir, "bin/busybox"), await readFile(busyboxPath), { mode: 0o755 });
  // busybox-static is the guest's amd64 binary; the build host is amd64 too (see preflight).
  const applets = (await run(busyboxPath, ["--list-full"])).split("\n").filter(Boolean);
  for (const rel of applets) {
    const path = join(dir, rel);
    if (await exists(path)) continue;
    await mkdir(dirname(path), { recursive: true });
    await symlink("/bin/busybox", path);
  }
  for (const [rel, mode] of [
    ["dev", 0o755],
    ["proc", 0o555],
    ["sys", 0o555],
    ["run", 0o755],
    ["tmp", 0o1777],
    ["root", 0o700],
    ["home/user", 0o755],
    ["mnt", 0o755],
    ["var/log", 0o755],
  ] as const) {
    await mkdir(join(dir, rel), { recursive: true });
    await chmod(join(dir, rel), mode);
  }
}

async function preflight() {
  if (process.platform !== "linux" || process.arch !== "x64") {
    throw new Error("the guest image is built on an amd64 Debian/Ubuntu host (it runs the guest's busybox)");
  }
  for (const [cmd, args] of [
    ["apt-get", ["--version"]],
    ["dpkg-deb", ["--version"]],
    ["mke2fs", ["-V"]],
    ["qemu-img", ["--version"]],
  ] as const) {
    await run(cmd, [...args]);
  }
}

/** Where the guest is built and cached: PRISTINE_GUEST_DIR, else `guest/` in the data dir (npm start reads it there too). */
export const defaultGuestDir = (env: NodeJS.ProcessEnv = process.env) =>
  resolve(env.PRISTINE_GUEST_DIR ?? join(env.PRISTINE_DATA_DIR ?? "./.pristine", "guest"));

export async function buildGuestImage(options: BuildOptions = {}): Promise<GuestImage> {
  const log = options.log ?? (() => {});
  const dir = resolve(options.cacheDir ?? defaultGuestDir());
  const paths = {
    dir,
    kernel: join(dir, "vmlinuz"),
    initrd: join(dir, "initrd.img"),
    disk: join(dir, "desktop.qcow2"),
    append: guestAppend,
  };
  const recipe = await recipeHash();
  const cached = options.force ? undefined : await upToDate(dir, recipe);
  if (cached) {
    log(`guest image is up to date in ${dir} (kernel ${cached.kernel.release}); nothing to do`);
    return { ...paths, manifest: cached, built: false };
  }

  // Two builds of one cache (two test projects, two `npm start`s) take turns.
  await mkdir(dir, { recursive: true });
  const release = await lockDir(join(dir, ".build.lock"), log);
  try {
    const built = options.force ? undefined : await upToDate(dir, recipe);
    if (built) return { ...paths, manifest: built, built: false };
    return await build(dir, paths, recipe, log);
  } finally {
    await release();
  }
}

/** A lock that is a directory (mkdir is atomic); a lock older than 10 minutes is a dead builder's. */
async function lockDir(path: string, log: (line: string) => void): Promise<() => Promise<void>> {
  const deadline = Date.now() + 15 * 60_000;
  for (let said = false; ; ) {
    try {
      await mkdir(path);
      return () => rm(path, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const age =
        Date.now() -
        (await stat(path).then(
          (s) => s.mtimeMs,
          () => Date.now(),
        ));
      if (age > 10 * 60_000) await rm(path, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`the guest image is locked by ${path} for too long`);
      if (!said) log("another build of the guest image is under way; waiting for it");
      said = true;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

async function build(
  dir: string,
  paths: Omit<GuestImage, "manifest" | "built">,
  recipe: string,
  log: (line: string) => void,
): Promise<GuestImage> {
  const started = Date.now();
  await preflight();
  const debsDir = join(dir, "debs");
  await mkdir(debsDir, { recursive: true });
  const work = join(dir, `.build-${randomBytes(4).toString("hex")}`);
  await mkdir(work);
  try {
    const kernel = await pickKernel(debsDir, work, log);
    const bb = await candidate("busybox-static");
    const bbDeb = await download(debsDir, "busybox-static", bb.version, log);
    await run("dpkg-deb", ["-x", bbDeb.file, join(work, "busybox")]);
    const busyboxPath = join(work, "busybox/bin/busybox");

    const modulesDir = await modulesDirOf(kernel.root, kernel.release);
    const plan = await planModules(modulesDir, wantedModules);
    log(
      `modules, in load order: ${plan.order.map((m) => m.name).join(" ")} (built in: ${plan.builtin.join(" ")})`,
    );
    const initrd = await buildInitramfs(await readFile(busyboxPath), modulesDir, plan.order);
    await writeFile(join(work, "initrd.img"), initrd);
    log(`initramfs: ${(initrd.length / 1024).toFixed(0)} KiB`);
    await rename(join(kernel.root, "boot", `vmlinuz-${kernel.release}`), join(work, "vmlinuz"));

    const rootfs = join(work, "rootfs");
    await stageRootfs(rootfs, busyboxPath);
    const raw = join(work, "desktop.raw");
    await run("mke2fs", [
      ...["-q", "-F", "-t", "ext4", "-L", "pristine-desktop"],
      ...["-d", rootfs, "-E", "root_owner=0:0", raw, `${diskSizeMiB}M`],
    ]);
    await run("qemu-img", ["convert", "-q", "-f", "raw", "-O", "qcow2", raw, join(work, "desktop.qcow2")]);
    log(`root filesystem: ext4, ${diskSizeMiB} MiB virtual, as qcow2`);

    const files = {} as GuestManifest["files"];
    for (const name of ["vmlinuz", "initrd.img", "desktop.qcow2"] as const) {
      files[name] = {
        sha256: await sha256File(join(work, name)),
        bytes: (await stat(join(work, name))).size,
      };
    }
    const manifest: GuestManifest = {
      format: 1,
      recipe,
      builtAt: new Date().toISOString(),
      kernel: {
        metapackage: kernel.metapackage,
        package: kernel.package,
        version: kernel.version,
        release: kernel.release,
        console: kernel.console,
      },
      busybox: { package: "busybox-static", version: bb.version },
      modules: { load: plan.order.map((m) => m.name), builtin: plan.builtin },
      append: guestAppend,
      disk: { format: "qcow2", filesystem: "ext4", virtualSizeMiB: diskSizeMiB },
      files,
      debs: {
        [kernel.package]: { file: relative(dir, kernel.deb.file), sha256: kernel.deb.sha256 },
        "busybox-static": { file: relative(dir, bbDeb.file), sha256: bbDeb.sha256 },
      },
    };
    // The manifest goes last: a build cut short leaves no manifest that vouches for its files.
    await rm(join(dir, "manifest.json"), { force: true });
    for (const name of Object.keys(files)) await rename(join(work, name), join(dir, name));
    await writeFile(join(dir, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    log(`built in ${((Date.now() - started) / 1000).toFixed(1)} s: ${dir}`);
    return { ...paths, manifest, built: true };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
