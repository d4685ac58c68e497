/**
 * A WebSocket client's opening handshake (RFC 6455) done by hand over node:http, and the first
 * frame the server sends: enough to show that a port speaks WebSocket, without a browser.
 */
import { createHash, randomBytes } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { request } from "node:http";
import type { Duplex } from "node:stream";

/** What a server must answer in Sec-WebSocket-Accept for a client's Sec-WebSocket-Key. */
export function websocketAccept(key: string): string {
  return createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
}

export interface Frame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/** Parses one unmasked server frame at the start of buf; undefined while it is incomplete. */
export function parseFrame(buf: Buffer): Frame | undefined {
  if (buf.length < 2) return undefined;
  const b0 = buf[0] as number;
  const b1 = buf[1] as number;
  let length = b1 & 0x7f;
  let at = 2;
  if (length === 126) {
    if (buf.length < 4) return undefined;
    length = buf.readUInt16BE(2);
    at = 4;
  } else if (length === 127) {
    if (buf.length < 10) return undefined;
    length = Number(buf.readBigUInt64BE(2));
    at = 10;
  }
  if (b1 & 0x80) throw new Error("a server frame must not be masked");
  if (buf.length < at + length) return undefined;
  return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload: buf.subarray(at, at + length) };
}

export interface Handshake {
  status: number;
  headers: IncomingHttpHeaders;
  /** The Sec-WebSocket-Accept value the key sent calls for. */
  expectedAccept: string;
  /** The server's first frame after a 101. */
  firstFrame?: Frame;
}

/** Sends an HTTP Upgrade to WebSocket; after a 101 also waits for the server's first frame. */
export function websocketHandshake(
  host: string,
  port: number,
  opts: { path?: string; protocol?: string; timeoutMs: number },
): Promise<Handshake> {
  const key = randomBytes(16).toString("base64");
  const expectedAccept = websocketAccept(key);
  return new Promise((resolve, reject) => {
    let upgraded: Duplex | undefined;
    const timer = setTimeout(() => {
      req.destroy();
      upgraded?.destroy();
      reject(
        new Error(`no WebSocket handshake and first frame from ${host}:${port} within ${opts.timeoutMs} ms`),
      );
    }, opts.timeoutMs);
    const finish = (result: Handshake) => {
      clearTimeout(timer);
      upgraded?.destroy();
      resolve(result);
    };
    const req = request({
      host,
      port,
      path: opts.path ?? "/",
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": key,
        ...(opts.protocol ? { "Sec-WebSocket-Protocol": opts.protocol } : {}),
      },
    });
    req.on("upgrade", (res, socket, head) => {
      upgraded = socket;
      let buf = head;
      const tryFrame = () => {
        const firstFrame = parseFrame(buf);
        if (firstFrame)
          finish({ status: res.statusCode ?? 0, headers: res.headers, expectedAccept, firstFrame });
      };
      socket.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        tryFrame();
      });
      socket.on("error", () => {});
      tryFrame();
    });
    req.on("response", (res) => {
      res.resume();
      finish({ status: res.statusCode ?? 0, headers: res.headers, expectedAccept });
    });
    req.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}
