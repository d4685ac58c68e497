import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { Upload } from "@aws-sdk/lib-storage";
import type { TransferSettings } from "../../config.ts";
import type { ReplicationMessage } from "../../messages/replication.ts";
import type { PeerRegion, ReplicaInbox } from "../../ports/index.ts";
import { sendJson } from "../sqs/queue.ts";
import { writeStreamToFile } from "../storage/file-writes.ts";

const MiB = 1024 * 1024;
/** S3's smallest part (but the last); 16 MiB parts reach S3's 10,000-part cap at about 156 GiB. */
export const defaultPartSizeBytes = 16 * MiB;
/** Lambda's default ephemeral storage. */
export const defaultStagingLimitBytes = 512 * MiB;

export function s3Client(endpoint?: string, region?: string): S3Client {
  // Path-style: the emulators (fauxqs) serve every bucket on one host.
  return new S3Client({
    ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
    ...(region ? { region } : {}),
    // Files (user-data deltas, image versions) are verified end to end where they are used (the
    // applied disk's content checksum, the image's sha256), so their transfers skip the SDK's
    // CRC32 of every byte on both sides; JSON documents, which carry no checksum of their own,
    // ask for it (ChecksumAlgorithm, ChecksumMode).
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/** The peer region as seen from here: its replication bucket and queue, nothing else. */
export function s3PeerRegion(opts: {
  name: string;
  s3: S3Client;
  bucket: string;
  sqs: SQSClient;
  queueUrl: string;
  transfer?: TransferSettings;
}): Omit<PeerRegion, "fence"> {
  const partSize = Math.max(5 * MiB, opts.transfer?.partSizeBytes ?? defaultPartSizeBytes);
  return {
    name: opts.name,
    async putFile(key, path) {
      const { size } = await stat(path);
      // 1 MiB reads: an eighth of the file reads and socket writes of the default 64 KiB.
      const body = createReadStream(path, { highWaterMark: MiB });
      if (size <= partSize) {
        // One part's worth: a single PutObject streamed from the file with its length, not
        // gathered into a buffer first (as Upload does) and hashed again to sign it.
        try {
          await opts.s3.send(
            new PutObjectCommand({ Bucket: opts.bucket, Key: key, Body: body, ContentLength: size }),
          );
        } finally {
          body.destroy();
        }
        return size;
      }
      // In parts, streamed from the file: no size limit but S3's own (10,000 parts). A failed
      // upload aborts its parts.
      const upload = new Upload({
        client: opts.s3,
        params: { Bucket: opts.bucket, Key: key, Body: body },
        partSize,
        queueSize: 2,
        leavePartsOnError: false,
      });
      try {
        await upload.done();
      } finally {
        // A failed upload leaves the file open otherwise.
        body.destroy();
      }
      return size;
    },
    async putJson(key, body) {
      const text = JSON.stringify(body);
      await opts.s3.send(
        new PutObjectCommand({
          Bucket: opts.bucket,
          Key: key,
          Body: text,
          ContentType: "application/json",
          ChecksumAlgorithm: "CRC32",
        }),
      );
      return Buffer.byteLength(text);
    },
    send: (messages: ReplicationMessage[]) => sendJson(opts.sqs, opts.queueUrl, messages),
  };
}

const tooLarge = (key: string, limit: number) =>
  `${key} is larger than the temporary storage limit (${limit} B): give it a destination`;

/** This region's replication bucket, read by the apply side. */
export function s3ReplicaInbox(s3: S3Client, bucket: string, transfer: TransferSettings = {}): ReplicaInbox {
  const limit = transfer.stagingLimitBytes ?? defaultStagingLimitBytes;
  return {
    async fetchFile(key, destination, opts = {}) {
      const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const body = out.Body as Readable;
      const staged = destination === undefined;
      if (staged && (out.ContentLength ?? 0) > limit) {
        body.destroy();
        throw new Error(tooLarge(key, limit));
      }
      // Written beside its destination under a temporary name, synced (unless the caller checks
      // it by checksum anyway), then renamed: a crash leaves a partial file that is never
      // mistaken for a whole one.
      const path =
        destination ??
        join(transfer.stagingDir ?? tmpdir(), `pristine-inbox-${randomBytes(6).toString("hex")}`);
      const partial = `${path}.${randomBytes(6).toString("hex")}.part`;
      await mkdir(dirname(path), { recursive: true });
      try {
        // Synced (unless the caller checks the file by checksum), so the rename publishes a whole file.
        await writeStreamToFile(body, partial, {
          sync: opts.sync !== false,
          ...(staged ? { limit, tooLarge: () => new Error(tooLarge(key, limit)) } : {}),
        });
        await rename(partial, path);
      } catch (err) {
        body.destroy();
        await rm(partial, { force: true });
        throw err;
      }
      const { size } = await stat(path);
      return { path, bytes: size, done: () => rm(path, { force: true }) };
    },
    async getJson<T>(key: string) {
      const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: "ENABLED" }));
      return JSON.parse(
        await (out.Body as { transformToString(): Promise<string> }).transformToString(),
      ) as T;
    },
    async remove(key) {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
  };
}
