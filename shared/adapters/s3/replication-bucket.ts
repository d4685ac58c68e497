import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { ReplicationMessage } from "../../messages/replication.ts";
import type { PeerRegion, ReplicaInbox } from "../../ports/index.ts";
import { sendJson } from "../sqs/queue.ts";

export function s3Client(endpoint?: string, region?: string): S3Client {
  // Path-style: the emulators (fauxqs) serve every bucket on one host.
  return new S3Client({
    ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
    ...(region ? { region } : {}),
  });
}

/** The peer region as seen from here: its replication bucket and queue, nothing else. */
export function s3PeerRegion(opts: {
  name: string;
  s3: S3Client;
  bucket: string;
  sqs: SQSClient;
  queueUrl: string;
}): PeerRegion {
  return {
    name: opts.name,
    async putFile(key, path) {
      const { size } = await stat(path);
      await opts.s3.send(
        new PutObjectCommand({
          Bucket: opts.bucket,
          Key: key,
          Body: createReadStream(path),
          ContentLength: size,
        }),
      );
      return size;
    },
    async putJson(key, body) {
      const text = JSON.stringify(body);
      await opts.s3.send(
        new PutObjectCommand({ Bucket: opts.bucket, Key: key, Body: text, ContentType: "application/json" }),
      );
      return Buffer.byteLength(text);
    },
    send: (messages: ReplicationMessage[]) => sendJson(opts.sqs, opts.queueUrl, messages),
  };
}

/** This region's replication bucket, read by the apply side. */
export function s3ReplicaInbox(s3: S3Client, bucket: string): ReplicaInbox {
  return {
    async fetchFile(key) {
      const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const path = join(tmpdir(), `pristine-inbox-${randomBytes(6).toString("hex")}.qcow2`);
      try {
        await pipeline(out.Body as Readable, createWriteStream(path));
      } catch (err) {
        await rm(path, { force: true });
        throw err;
      }
      const { size } = await stat(path);
      return { path, bytes: size, done: () => rm(path, { force: true }) };
    },
    async getJson<T>(key: string) {
      const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return JSON.parse(
        await (out.Body as { transformToString(): Promise<string> }).transformToString(),
      ) as T;
    },
    async remove(key) {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
  };
}
