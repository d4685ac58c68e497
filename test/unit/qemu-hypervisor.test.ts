/** The QEMU adapter's parts that need no VM: accelerator choice, command line, QMP, a missing QEMU. */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cpioNewc } from "../../guest/cpio.ts";
import { chooseAccel } from "../../shared/adapters/hypervisor/accel.ts";
import { QemuHypervisor } from "../../shared/adapters/hypervisor/qemu.ts";
import { qemuArgs, vmPaths, vncPorts } from "../../shared/adapters/hypervisor/qemu-command.ts";
import { assertDiskId, toBlockInfo } from "../../shared/adapters/hypervisor/qemu-disks.ts";
import { assertVncPassword } from "../../shared/adapters/hypervisor/qemu-vm.ts";
import { QmpClient, QmpError } from "../../shared/adapters/hypervisor/qmp.ts";
import { vncAuthResponse } from "../support/rfb.ts";

const cpuinfo = (flags: string) => `processor\t: 0\nflags\t\t: fpu vme de pse ${flags} sse2\n`;

describe("accelerator", () => {
  it("uses KVM only with a usable /dev/kvm and vmx or svm", () => {
    expect(chooseAccel(undefined, true, cpuinfo("vmx")).accel).toBe("kvm");
    expect(chooseAccel(undefined, true, cpuinfo("svm")).accel).toBe("kvm");
    expect(chooseAccel(undefined, true, cpuinfo("")).accel).toBe("tcg");
    expect(chooseAccel(undefined, false, cpuinfo("vmx")).accel).toBe("tcg");
  });

  it("PRISTINE_QEMU_ACCEL overrides, and only takes kvm or tcg", () => {
    expect(chooseAccel("tcg", true, cpuinfo("vmx")).accel).toBe("tcg");
    expect(chooseAccel("kvm", false, cpuinfo("")).accel).toBe("kvm");
    expect(() => chooseAccel("hvf", true, "")).toThrow(/kvm or tcg/);
  });
});

describe("qemu command line", () => {
  const spec = {
    vmId: "d1",
    diskPath: "/data/a,b/desktop.qcow2",
    memoryMiB: 128,
    bootFiles: { kernel: "/g/vmlinuz", initrd: "/g/initrd.img", append: "quiet" },
  };
  const paths = vmPaths("/run/p,x/d1");
  const base = { spec, paths, vncHost: "127.0.0.1", sandbox: true, tcgCacheMiB: 32 };

  it("TCG with a bounded translation cache; KVM with the host CPU", () => {
    const tcg = qemuArgs({ ...base, accel: "tcg" }).join(" ");
    expect(tcg).toContain("-accel tcg,tb-size=32");
    expect(tcg).not.toContain("-cpu host");
    const kvm = qemuArgs({ ...base, accel: "kvm" }).join(" ");
    expect(kvm).toContain("-accel kvm -cpu host");
  });

  it("escapes commas in option paths; the JSON blockdev carries the path as is", () => {
    const args = qemuArgs({ ...base, accel: "tcg" });
    expect(args).toContain("socket,id=qmp0,path=/run/p,,x/d1/qmp.sock,server=on,wait=off");
    const blockdev = JSON.parse(args[args.indexOf("-blockdev") + 1] as string);
    expect(blockdev.file.filename).toBe("/data/a,b/desktop.qcow2");
  });

  it("VNC needs a password, listens on the given host and may add a WebSocket listener", () => {
    const vnc = (args: string[]) => args[args.indexOf("-vnc") + 1];
    expect(vnc(qemuArgs({ ...base, accel: "tcg" }))).toBe("127.0.0.1:0,to=99,password=on");
    const args = qemuArgs({ ...base, accel: "tcg", websocket: true });
    // QEMU picks the WebSocket port itself (5700 up): no port is guessed free and then raced for.
    expect(vnc(args)).toBe("127.0.0.1:0,to=99,password=on,websocket=on");
    expect(args).toContain("virtserialport,bus=vser0.0,chardev=agent0,name=org.pristine.agent.0");
  });

  it("the VNC and WebSocket ports are read back from query-vnc-servers", () => {
    // QEMU 7.2's answer for -vnc 127.0.0.1:0,to=99,password=on,websocket=on with 5900 and 5700 taken.
    const answer = [
      {
        id: "default",
        auth: "vnc",
        clients: [],
        server: [
          { auth: "vnc", family: "ipv4", service: "5701", host: "127.0.0.1", websocket: true },
          { auth: "vnc", family: "ipv4", service: "5901", host: "127.0.0.1", websocket: false },
        ],
      },
    ];
    expect(vncPorts(answer)).toEqual({ vncPort: 5901, websocketPort: 5701 });
    expect(vncPorts([{ server: answer[0]?.server.slice(1) ?? [] }])).toEqual({ vncPort: 5901 });
    expect(() => vncPorts([])).toThrow(/no VNC listener/);
  });
});

describe("disks and passwords", () => {
  it("query-block: -blockdev drives are named by their qdev id; empty drives are left out", () => {
    const info = toBlockInfo([
      {
        device: "",
        qdev: "/machine/peripheral/vda/virtio-backend",
        inserted: {
          file: "/d/a.qcow2",
          drv: "qcow2",
          ro: false,
          backing_file: "golden.qcow2",
          image: { "full-backing-filename": "/g/golden.qcow2", "backing-filename": "golden.qcow2" },
        },
      },
      { device: "", qdev: "disk-userdata", inserted: { file: "/u/alice.img", drv: "raw", ro: true } },
      { device: "cd0", qdev: "/machine/peripheral/cd0/virtio-backend" },
    ]);
    expect(info).toEqual([
      { device: "vda", file: "/d/a.qcow2", format: "qcow2", readOnly: false, backingFile: "/g/golden.qcow2" },
      { device: "disk-userdata", file: "/u/alice.img", format: "raw", readOnly: true },
    ]);
  });

  it("disk ids become QEMU node and device names: short, a letter first, no separators of QEMU's", () => {
    expect(() => assertDiskId("userdata")).not.toThrow();
    for (const bad of ["", "1st", "a,b", "a b", "x".repeat(25)]) expect(() => assertDiskId(bad)).toThrow();
  });

  it("a VNC password has 1 to 8 bytes (VNC authentication would cut a longer one)", () => {
    expect(() => assertVncPassword("12345678")).not.toThrow();
    expect(() => assertVncPassword("")).toThrow(/1 to 8 bytes/);
    expect(() => assertVncPassword("ääää5")).toThrow(/1 to 8 bytes/);
  });
});

describe("a machine without QEMU", () => {
  it("start() fails at once, naming the Debian package", async () => {
    const runDir = await mkdtemp(join(tmpdir(), "pristine-noqemu-"));
    try {
      const hv = new QemuHypervisor({ runDir, binary: "/nonexistent/qemu-system-x86_64" });
      await expect(hv.start({ vmId: "x", diskPath: "/nonexistent.qcow2", memoryMiB: 128 })).rejects.toThrow(
        /apt-get install qemu-system-x86/,
      );
    } finally {
      await rm(runDir, { recursive: true, force: true });
    }
  });
});

describe("QMP client", () => {
  let server: Server | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A fake QEMU: greets, accepts capabilities, then hands each command to `reply`. */
  async function fakeQemu(reply: (cmd: { execute: string; id: string }, socket: Socket) => void) {
    dir = await mkdtemp(join(tmpdir(), "pristine-qmp-"));
    const path = join(dir, "qmp.sock");
    const sockets: Socket[] = [];
    server = createServer((socket) => {
      sockets.push(socket);
      socket.write(
        '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": []}}\r\n',
      );
      let buf = "";
      socket.on("data", (d) => {
        buf += d.toString();
        for (let at = buf.indexOf("\n"); at >= 0; at = buf.indexOf("\n")) {
          const cmd = JSON.parse(buf.slice(0, at));
          buf = buf.slice(at + 1);
          if (cmd.execute === "qmp_capabilities") socket.write(`{"return": {}, "id": "${cmd.id}"}\r\n`);
          else reply(cmd, socket);
        }
      });
    });
    await new Promise<void>((r) => server?.listen(path, r));
    return { path, sockets };
  }

  it("matches replies to commands by id, reports errors and events", async () => {
    const held: { id: string }[] = [];
    const { path, sockets } = await fakeQemu((cmd, socket) => {
      if (cmd.execute === "slow") held.push(cmd);
      else if (cmd.execute === "bad")
        socket.write(`{"error": {"class": "GenericError", "desc": "nope"}, "id": "${cmd.id}"}\r\n`);
      else {
        socket.write(`{"return": {"n": 2}, "id": "${cmd.id}"}\r\n`);
        for (const h of held.splice(0)) socket.write(`{"return": {"n": 1}, "id": "${h.id}"}\r\n`);
      }
    });
    const qmp = await QmpClient.connect(path, { timeoutMs: 2000 });
    expect(qmp.version).toBe("7.2.22");
    const slow = qmp.execute("slow");
    expect(await qmp.execute("fast")).toEqual({ n: 2 });
    expect(await slow).toEqual({ n: 1 });
    await expect(qmp.execute("bad")).rejects.toThrow(QmpError);

    const shutdown = qmp.waitForEvent((e) => e.event === "SHUTDOWN", 2000, "SHUTDOWN");
    sockets[0]?.write(
      '{"event": "SHUTDOWN", "data": {"guest": true}, "timestamp": {"seconds": 1, "microseconds": 0}}\r\n',
    );
    expect((await shutdown.promise).data).toEqual({ guest: true });

    const pending = qmp.execute("slow");
    sockets[0]?.destroy();
    await expect(pending).rejects.toThrow(/connection closed/);
    expect(qmp.isClosed).toBe(true);
  });

  it("every command and wait has a deadline", async () => {
    const { path } = await fakeQemu(() => {});
    const qmp = await QmpClient.connect(path, { timeoutMs: 2000 });
    await expect(qmp.execute("never", undefined, { timeoutMs: 50 })).rejects.toThrow(/no reply within 50 ms/);
    await expect(qmp.waitForEvent(() => true, 50, "anything").promise).rejects.toThrow(/no anything/);
    qmp.close();
    await expect(QmpClient.connect(join(dir as string, "absent.sock"), { timeoutMs: 100 })).rejects.toThrow(
      /timed out/,
    );
  });
});

describe("initramfs archive", () => {
  it("is newc: 070701 headers, 4-byte aligned, device nodes without root, a trailer", () => {
    const archive = cpioNewc([
      { type: "dir", path: "dev" },
      { type: "char", path: "dev/console", major: 5, minor: 1 },
      { type: "file", path: "init", data: Buffer.from("#!/bin/sh\n"), mode: 0o755 },
    ]);
    const entries: { name: string; mode: number; rdev: [number, number]; size: number }[] = [];
    for (let at = 0; at < archive.length; ) {
      expect(archive.toString("latin1", at, at + 6)).toBe("070701");
      const field = (i: number) =>
        Number.parseInt(archive.toString("latin1", at + 6 + i * 8, at + 14 + i * 8), 16);
      const nameSize = field(11);
      const name = archive.toString("latin1", at + 110, at + 110 + nameSize - 1);
      entries.push({ name, mode: field(1), rdev: [field(9), field(10)], size: field(6) });
      const dataAt = Math.ceil((at + 110 + nameSize) / 4) * 4;
      at = Math.ceil((dataAt + field(6)) / 4) * 4;
      if (name === "TRAILER!!!") {
        expect(at).toBe(archive.length);
        break;
      }
    }
    expect(entries.map((e) => e.name)).toEqual(["dev", "dev/console", "init", "TRAILER!!!"]);
    expect(entries[1]).toMatchObject({ mode: 0o020600, rdev: [5, 1] });
    expect(entries[2]).toMatchObject({ mode: 0o100755, size: 10 });
  });
});

describe("VNC authentication", () => {
  it("is DES with the bit-reversed password as key", () => {
    // Key "\x80..." reversed bitwise is 0x01...: DES(0101010101010101, 0) = 8ca64de9c1b123a7.
    const response = vncAuthResponse(Buffer.alloc(16), "\x80\x80\x80\x80\x80\x80\x80\x80");
    expect(response.toString("hex")).toBe("8ca64de9c1b123a78ca64de9c1b123a7");
  });
});
