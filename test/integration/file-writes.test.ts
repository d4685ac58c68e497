/**
 * Downloads written to files in batches (writeStreamToFile): every byte in order however the
 * stream is cut (including more pieces than one writev takes), and a limit that stops the write.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeStreamToFile } from "../../shared/adapters/storage/file-writes.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pristine-file-writes-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `data` cut into pieces of the given sizes, in turn. */
function piecesOf(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const size = sizes[i % sizes.length] as number;
    out.push(data.subarray(at, at + size));
    at += size;
  }
  return out;
}

describe("writeStreamToFile", () => {
  it("writes every byte in order: large pieces across batches, and more small pieces than one writev takes", async () => {
    for (const [name, data, sizes] of [
      ["large", randomBytes(9 * 1024 * 1024 + 123), [65_536, 1_000_000, 7]],
      // 3000 pieces gathered into one batch: more than IOV_MAX (1024) buffers in one writev.
      ["small", randomBytes(300_000), [100]],
    ] as const) {
      const path = join(dir, name);
      const written = await writeStreamToFile(Readable.from(piecesOf(data, [...sizes])), path, {
        sync: true,
      });
      expect(written).toBe(data.length);
      expect((await readFile(path)).equals(data)).toBe(true);
    }
  });

  it("stops at the limit with the caller's error, having written no more than the limit", async () => {
    const path = join(dir, "limited");
    const data = randomBytes(3 * 1024 * 1024);
    await expect(
      writeStreamToFile(Readable.from(piecesOf(data, [65_536])), path, {
        sync: false,
        limit: 1024 * 1024,
        tooLarge: () => new Error("too large for temporary storage"),
      }),
    ).rejects.toThrow("too large for temporary storage");
    expect((await stat(path)).size).toBeLessThanOrEqual(1024 * 1024);
  });
});
