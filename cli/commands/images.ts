/** Golden images and their versions: create, list, get, publish (--wait), retire, delete a version. */
import type { Command } from "commander";
import type { Image, ImageVersion } from "../../shared/domain/model.ts";
import * as s from "../../shared/http/schemas.ts";
import { integer, validBody, validId } from "../args.ts";
import { api, show, type WaitFlags, waitOptions, withWait } from "../context.ts";
import { UsageError } from "../errors.ts";
import { bytes, printFields, printLine, printTable } from "../output.ts";
import { type Progress, waitFor } from "../wait.ts";

type ImageWithVersions = Image & { versions: ImageVersion[] };

/** Publishing as progress: done once READY, failed once FAILED. */
export function publishProgress(image: ImageWithVersions, version: number): Progress {
  const v = image.versions.find((x) => x.version === version);
  const state = v?.state ?? "PUBLISHING";
  return {
    value: state === "PUBLISHING" ? 0 : 1,
    total: 1,
    status: state,
    done: state === "READY",
    ...(state === "FAILED" ? { failed: `version ${version}: ${v?.error ?? "no reason given"}` } : {}),
  };
}

export function imageCommands(program: Command): void {
  const images = program.command("images").description("golden images and their versions");
  images
    .command("create <name>")
    .description("create a golden image (no version yet: publish one)")
    .action(async (name: string, _f: unknown, cmd: Command) => {
      const body = validBody(s.createImageBody, { name });
      const client = await api(cmd);
      show(cmd, await client.json<Image>("POST", "/v1/images", { body }), imageFields);
    });
  images
    .command("list")
    .description("the tenant's golden images")
    .action(async (_f: unknown, cmd: Command) => {
      const client = await api(cmd);
      show(cmd, await client.json<{ items: Image[] }>("GET", "/v1/images"), (r) =>
        printTable(
          ["image", "name", "latest version", "created"],
          r.items.map((i) => [i.imageId, i.name, i.latestVersion, i.createdAt]),
        ),
      );
    });
  images
    .command("get <imageId>")
    .description("an image and its versions")
    .action(async (imageId: string, _f: unknown, cmd: Command) => {
      validId(s.id, "image", imageId);
      const client = await api(cmd);
      show(cmd, await client.json<ImageWithVersions>("GET", `/v1/images/${imageId}`), (i) => {
        imageFields(i);
        versionTable(i.versions);
      });
    });
  withWait(
    images
      .command("publish <imageId>")
      .description("publish a new version from a disk in the tenant's import folder, or a blank disk")
      .option("--path <path>", "the disk (qcow2 or raw), relative to the tenant's import folder")
      .option("--blank <MiB>", "a blank disk of this size instead", integer),
    "the version is READY (exit 5 if it FAILED)",
  ).action(async (imageId: string, f: WaitFlags & { path?: string; blank?: number }, cmd: Command) => {
    validId(s.id, "image", imageId);
    if ((f.path === undefined) === (f.blank === undefined))
      throw new UsageError("publish needs exactly one of --path <path> and --blank <MiB>");
    const source = f.path !== undefined ? { path: f.path } : { blankSizeMiB: f.blank };
    const body = validBody(s.publishVersionBody, { source });
    const client = await api(cmd);
    const version = await client.json<ImageVersion>("POST", `/v1/images/${imageId}/versions`, { body });
    if (!f.wait) return show(cmd, version, (v) => versionTable([v]));
    const image = await waitFor(
      waitOptions(`image ${imageId} version ${version.version}`, f),
      () => client.json<ImageWithVersions>("GET", `/v1/images/${imageId}`),
      (i) => publishProgress(i, version.version),
    );
    const ready = image.versions.find((v) => v.version === version.version) ?? version;
    show(cmd, ready, (v) => versionTable([v]));
  });
  images
    .command("retire <imageId> <version>")
    .description("make no new desktops from a version")
    .action(async (imageId: string, version: string, _f: unknown, cmd: Command) => {
      const n = versionNumber(imageId, version);
      const client = await api(cmd);
      show(
        cmd,
        await client.json<ImageVersion>("POST", `/v1/images/${imageId}/versions/${n}/retire`, { body: {} }),
        (v) => versionTable([v]),
      );
    });
  images
    .command("delete-version <imageId> <version>")
    .description("delete a version nothing uses any more")
    .action(async (imageId: string, version: string, _f: unknown, cmd: Command) => {
      const n = versionNumber(imageId, version);
      const client = await api(cmd);
      await client.json<undefined>("DELETE", `/v1/images/${imageId}/versions/${n}`);
      show(cmd, { imageId, version: n, deleted: true }, () =>
        printLine(`image ${imageId} version ${n} deleted`),
      );
    });
}

function versionNumber(imageId: string, version: string): number {
  validId(s.id, "image", imageId);
  const parsed = s.versionNumber.safeParse(version);
  if (!parsed.success || !/^\d+$/.test(version))
    throw new UsageError(`version ${JSON.stringify(version)}: must be a positive whole number`);
  return parsed.data;
}

function imageFields(i: Image): void {
  printFields([
    ["imageId", i.imageId],
    ["name", i.name],
    ["latestVersion", i.latestVersion],
    ["createdAt", i.createdAt],
  ]);
}

function versionTable(versions: ImageVersion[]): void {
  printTable(
    ["version", "state", "source", "virtual size", "file size", "retired", "error"],
    versions.map((v) => [
      v.version,
      v.state,
      "path" in v.source ? v.source.path : `blank ${v.source.blankSizeMiB} MiB`,
      bytes(v.virtualSizeBytes),
      bytes(v.fileBytes),
      v.retiredAt,
      v.error,
    ]),
  );
}
