/**
 * Just enough of an RFB (VNC) client to check a VM's connection password: the RFB 3.8 handshake
 * with VNC authentication (security type 2), then ClientInit/ServerInit on success.
 */
import { createCipheriv } from "node:crypto";
import { connect } from "node:net";

export type RfbResult =
  | { ok: true; width: number; height: number; name: string; closed?: Promise<void> }
  | { ok: false; reason: string };

const reverseBits = (b: number) => {
  let r = 0;
  for (let i = 0; i < 8; i++) r |= ((b >> i) & 1) << (7 - i);
  return r;
};

/**
 * The response to a VNC authentication challenge: each 8-byte half DES-encrypted with the
 * password (zero-padded or cut to 8 bytes) as key, each key byte's bits reversed.
 * OpenSSL 3 puts single DES in its legacy provider, which Node does not load; triple DES with
 * three equal keys (E(D(E(x)))) is the same function and is in the default provider.
 */
export function vncAuthResponse(challenge: Buffer, password: string): Buffer {
  const key = Buffer.alloc(8);
  Buffer.from(password, "latin1").copy(key, 0, 0, 8);
  for (let i = 0; i < 8; i++) key[i] = reverseBits(key[i] as number);
  const cipher = createCipheriv("des-ede3-ecb", Buffer.concat([key, key, key]), null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(challenge), cipher.final()]);
}

/**
 * Connects and authenticates with password; never waits past timeoutMs. With `hold`, a client
 * that got in stays connected, and `closed` resolves when the server ends the connection.
 */
export async function vncLogin(
  host: string,
  port: number,
  password: string,
  timeoutMs = 10_000,
  opts: { hold?: boolean } = {},
): Promise<RfbResult> {
  const socket = connect(port, host);
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  let holding = false;
  let buffered = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  socket.on("data", (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    wake?.();
  });
  socket.on("error", (err) => {
    failure = err;
    wake?.();
  });
  socket.on("close", () => {
    failure ??= new Error("connection closed");
    wake?.();
  });
  const deadline = Date.now() + timeoutMs;
  const timer = setTimeout(() => {
    failure = new Error(`no RFB handshake within ${timeoutMs} ms`);
    wake?.();
  }, timeoutMs);

  const read = async (n: number): Promise<Buffer> => {
    while (buffered.length < n) {
      if (failure) throw failure;
      if (Date.now() > deadline) throw new Error("RFB read timed out");
      await new Promise<void>((r) => {
        wake = r;
      });
      wake = undefined;
    }
    const out = buffered.subarray(0, n);
    buffered = buffered.subarray(n);
    return out;
  };
  const reason = async () => (await read((await read(4)).readUInt32BE(0))).toString("utf8");

  try {
    const version = (await read(12)).toString("latin1");
    if (!version.startsWith("RFB 003.")) throw new Error(`not an RFB server: ${JSON.stringify(version)}`);
    socket.write("RFB 003.008\n");
    const count = (await read(1))[0] as number;
    if (count === 0) return { ok: false, reason: await reason() };
    const types = [...(await read(count))];
    if (!types.includes(2)) return { ok: false, reason: `no VNC authentication offered (types ${types})` };
    socket.write(Buffer.from([2]));
    const challenge = await read(16);
    socket.write(vncAuthResponse(challenge, password));
    const result = (await read(4)).readUInt32BE(0);
    if (result !== 0) return { ok: false, reason: await reason() };
    socket.write(Buffer.from([1])); // ClientInit: shared session
    const init = await read(24);
    const name = (await read(init.readUInt32BE(20))).toString("utf8");
    holding = opts.hold === true;
    return {
      ok: true,
      width: init.readUInt16BE(0),
      height: init.readUInt16BE(2),
      name,
      ...(holding ? { closed } : {}),
    };
  } finally {
    clearTimeout(timer);
    if (!holding) socket.destroy();
  }
}
