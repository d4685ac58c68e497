/**
 * Kernel module dependencies without depmod: Debian's linux-image packages ship no modules.dep
 * (it is generated when the package is installed), so the build reads what depmod itself reads,
 * the `depends=` entry of each module's ELF `.modinfo` section.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

/** The key=value strings of a module's `.modinfo` section (keys may repeat, e.g. alias). */
export function modinfo(elf: Buffer): [string, string][] {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) {
    throw new Error("not a little-endian ELF64 kernel module");
  }
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const shstrndx = elf.readUInt16LE(0x3e);
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    return {
      name: elf.readUInt32LE(at),
      offset: Number(elf.readBigUInt64LE(at + 24)),
      size: Number(elf.readBigUInt64LE(at + 32)),
    };
  };
  const names = section(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    const start = names.offset + s.name;
    const name = elf.toString("latin1", start, elf.indexOf(0, start));
    if (name !== ".modinfo") continue;
    return elf
      .toString("latin1", s.offset, s.offset + s.size)
      .split("\0")
      .filter((kv) => kv.includes("="))
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]);
  }
  throw new Error("no .modinfo section");
}

/** Module names use "_" where file names may use "-" (virtio-rng.ko is module virtio_rng). */
export const moduleName = (s: string) => s.replace(/\.ko$/, "").replaceAll("-", "_");

/** Every module file under lib/modules/<release>/kernel, by module name. */
export async function moduleFiles(modulesDir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const entries = await readdir(join(modulesDir, "kernel"), { recursive: true });
  for (const rel of entries) {
    if (/\.ko\.(xz|zst|gz)$/.test(rel)) {
      throw new Error(`compressed kernel modules (${rel}) are not supported; use an uncompressed kernel`);
    }
    if (rel.endsWith(".ko")) files.set(moduleName(rel.slice(rel.lastIndexOf("/") + 1)), join("kernel", rel));
  }
  return files;
}

/** Names of the modules built into the kernel (modules.builtin lists their would-be paths). */
export async function builtinModules(modulesDir: string): Promise<Set<string>> {
  const text = await readFile(join(modulesDir, "modules.builtin"), "utf8");
  return new Set(
    text
      .split("\n")
      .filter(Boolean)
      .map((p) => moduleName(p.slice(p.lastIndexOf("/") + 1))),
  );
}

export interface ModulePlan {
  /** Modules to insmod, each after the modules it depends on. */
  order: { name: string; path: string }[];
  /** Wanted modules that are built into this kernel. */
  builtin: string[];
}

/** The load order for `wanted` and their dependencies (a depth-first post-order). */
export async function planModules(modulesDir: string, wanted: string[]): Promise<ModulePlan> {
  const [files, builtin] = await Promise.all([moduleFiles(modulesDir), builtinModules(modulesDir)]);
  const order: { name: string; path: string }[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = async (name: string, chain: string[]): Promise<void> => {
    if (done.has(name) || builtin.has(name)) return;
    if (visiting.has(name)) throw new Error(`module dependency cycle: ${[...chain, name].join(" -> ")}`);
    const path = files.get(name);
    if (!path)
      throw new Error(`kernel module ${name} not found (needed by ${chain.join(" -> ") || "the guest"})`);
    visiting.add(name);
    const info = modinfo(await readFile(join(modulesDir, path)));
    const depends = info.find(([k]) => k === "depends")?.[1] ?? "";
    for (const dep of depends.split(",").filter(Boolean)) await visit(moduleName(dep), [...chain, name]);
    visiting.delete(name);
    done.add(name);
    order.push({ name, path });
  };
  for (const name of wanted) await visit(moduleName(name), []);
  return { order, builtin: wanted.map(moduleName).filter((n) => builtin.has(n)) };
}
