/**
 * What a fleet host runs and how it is set up: the agent bundle, the paths and names the agent
 * and its systemd units share, and the user data that installs QEMU/KVM and Node.js and starts
 * the agent on every boot.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AssetHashType, BundlingOutput, DockerImage } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import { Asset } from "aws-cdk-lib/aws-s3-assets";
import type { Construct } from "constructs";
import { buildSync } from "esbuild";
import type { HostStorage } from "../config.ts";
import { REPO_ROOT } from "./lambda-function.ts";

/** The end of every here-document in the user data (quoted: nothing in them is expanded). */
const HEREDOC_END = "PRISTINE_EOF";

/** The host's data disk (datastore volume or instance store) is mounted here. */
export const HOST_DATA_DIR = "/var/lib/pristine";
/** PRISTINE_DATASTORE_PATH of a fleet host: the host-local datastore, on the data disk. */
export const HOST_DATASTORE_PATH = `${HOST_DATA_DIR}/datastore`;
/** Boot files of the desktop guest (PRISTINE_GUEST_KERNEL, PRISTINE_GUEST_INITRD). */
export const HOST_GUEST_DIR = `${HOST_DATA_DIR}/guest`;
/** PRISTINE_VM_RUN_DIR: QMP sockets and pid files of the running VMs (systemd RuntimeDirectory). */
export const HOST_VM_RUN_DIR = "/run/pristine/vms";
/** The agent's systemd unit. */
export const AGENT_SERVICE = "pristine-agent.service";
/** Where the guest boot files are fetched from, in the region's image store bucket. */
export const GUEST_BOOT_FILES_PREFIX = "guest/";
/** The bus the agents put the desktops' session events on: the default bus, where the rule that routes them is. */
export const HOST_EVENT_BUS_NAME = "default";
/** Canonical's public SSM parameter of the current Ubuntu 24.04 LTS amd64 AMI. */
export const UBUNTU_AMI_PARAMETER =
  "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id";

/** The Node.js version the hosts run: the `node` dev dependency the tests run on. */
export function hostNodeVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as {
    devDependencies?: Record<string, string>;
  };
  const version = pkg.devDependencies?.node ?? "";
  if (!/^\d+\.\d+\.\d+$/.test(version)) {
    throw new Error(
      `package.json devDependencies.node must be an exact version, got ${JSON.stringify(version)}`,
    );
  }
  return version;
}

/**
 * The agent as one ES module, bundled with esbuild (the same options as the Lambda bundles) at
 * synth time, offline: no node_modules on the host, and the asset's hash (so the user data)
 * changes only when the agent's code does. Skipped like every bundle when the stack is not
 * bundled (`aws:cdk:bundling-stacks`).
 */
export function agentBundleAsset(scope: Construct, id: string): Asset {
  return new Asset(scope, id, {
    path: REPO_ROOT,
    assetHashType: AssetHashType.OUTPUT,
    bundling: {
      // Never used: local bundling always succeeds or throws.
      image: DockerImage.fromRegistry("pristine-agent-bundling-is-local"),
      outputType: BundlingOutput.SINGLE_FILE,
      local: {
        tryBundle(outputDir: string): boolean {
          buildSync({
            absWorkingDir: REPO_ROOT,
            entryPoints: [path.join(REPO_ROOT, "local", "agent.ts")],
            outfile: path.join(outputDir, "agent.mjs"),
            bundle: true,
            platform: "node",
            format: "esm",
            target: "node24",
            mainFields: ["module", "main"],
            minify: true,
            sourcemap: "inline",
            sourcesContent: false,
            tsconfig: path.join(REPO_ROOT, "tsconfig.json"),
            banner: {
              js:
                "import { createRequire as __pristineCreateRequire } from 'node:module'; " +
                "const require = __pristineCreateRequire(import.meta.url);",
            },
            logLevel: "warning",
          });
          return true;
        },
      },
    },
  });
}

export interface HostUserDataOptions {
  readonly hostId: string;
  readonly region: string;
  readonly storage: HostStorage;
  readonly nodeVersion: string;
  readonly agentBundle: Asset;
  readonly imagesBucketName: string;
  readonly environment: Readonly<Record<string, string>>;
}

/** The shell scripts the hosts run, beside this file's folder: infra/host/. */
const HOST_SCRIPTS_DIR = fileURLToPath(new URL("../host/", import.meta.url));

/** Lines that write one of infra/host/*.sh to `target` on the host. */
function installScript(target: string, file: string): string[] {
  const text = readFileSync(path.join(HOST_SCRIPTS_DIR, file), "utf8").trimEnd();
  if (text.includes(HEREDOC_END)) throw new Error(`${file} must not contain ${HEREDOC_END}`);
  return [`cat >${target} <<'${HEREDOC_END}'`, text, HEREDOC_END, `chmod 0755 ${target}`];
}

/** A value in single quotes for systemd's EnvironmentFile (JSON keeps its double quotes). */
function envFileLine(key: string, value: string): string {
  if (!/^[A-Z_][A-Z0-9_]*$/.test(key)) throw new Error(`bad variable name ${key}`);
  if (!value.includes("${Token[") && value.includes("'")) throw new Error(`${key}: no single quotes`);
  return `${key}='${value}'`;
}

/**
 * The host's user data: a cloud-config part that makes cloud-init run the shell part on every
 * boot (not only the first), and the shell part, which is idempotent. It installs QEMU/KVM and
 * Node.js (first boot), mounts the data disk, fetches the agent bundle, writes the agent's
 * environment and systemd units, and (re)starts the agent. Because it runs on every boot, the
 * restart that a changed user data causes (a new agent bundle) applies the change.
 */
export function hostUserData(options: HostUserDataOptions): ec2.UserData {
  const { hostId, region, storage, nodeVersion, agentBundle } = options;
  const envFile = Object.entries(options.environment).map(([k, v]) => envFileLine(k, v));
  const shell = ec2.UserData.forLinux();
  shell.addCommands(
    "set -euo pipefail",
    "exec >>/var/log/pristine-host-setup.log 2>&1",
    `echo "pristine host ${hostId}: setup at $(date -Is)"`,
    "export DEBIAN_FRONTEND=noninteractive",
    `NODE_VERSION='${nodeVersion}'`,
    "",
    "# QEMU/KVM and tools (first boot).",
    "if ! command -v qemu-system-x86_64 >/dev/null || ! command -v qemu-img >/dev/null; then",
    "  apt-get -o DPkg::Lock::Timeout=600 update -q",
    "  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \\",
    "    qemu-system-x86 qemu-utils mdadm e2fsprogs xz-utils curl ca-certificates",
    "fi",
    "# The AWS CLI (Ubuntu 24.04 packages it as a snap only).",
    "[ -x /snap/bin/aws ] || { snap wait system seed.loaded; snap install aws-cli --classic; }",
    "",
    "# Node.js, the version the project is tested on: the official build, checked against its release's SHASUMS256.txt.",
    'if [ "$(/opt/node/bin/node --version 2>/dev/null || true)" != "v$NODE_VERSION" ]; then',
    '  tmp=$(mktemp -d); tarball="node-v$NODE_VERSION-linux-x64.tar.xz"',
    '  curl -fsSL -o "$tmp/$tarball" "https://nodejs.org/dist/v$NODE_VERSION/$tarball"',
    '  curl -fsSL -o "$tmp/SHASUMS256.txt" "https://nodejs.org/dist/v$NODE_VERSION/SHASUMS256.txt"',
    '  (cd "$tmp" && grep " $tarball\\$" SHASUMS256.txt | sha256sum -c -)',
    '  rm -rf /opt/node && mkdir -p /opt/node && tar -xJf "$tmp/$tarball" -C /opt/node --strip-components=1',
    '  rm -rf "$tmp"',
    "fi",
    "",
    "# The agent's user: may use /dev/kvm, owns the data disk.",
    `id pristine >/dev/null 2>&1 || useradd --system --home-dir ${HOST_DATA_DIR} --no-create-home --shell /usr/sbin/nologin --groups kvm pristine`,
    "install -d -m 0755 /opt/pristine /etc/pristine",
    "",
    "# Helpers of the units below (infra/host/*.sh).",
    ...installScript("/usr/local/sbin/pristine-data-disk", "pristine-data-disk.sh"),
    ...installScript("/usr/local/sbin/pristine-guest-files", "pristine-guest-files.sh"),
    "",
    "# The agent bundle of this deployment.",
    `/snap/bin/aws s3 cp --only-show-errors --region ${region} "s3://${agentBundle.s3BucketName}/${agentBundle.s3ObjectKey}" /opt/pristine/agent.mjs.new`,
    "mv /opt/pristine/agent.mjs.new /opt/pristine/agent.mjs",
    "",
    "# The agent's environment.",
    `cat >/etc/pristine/agent.env <<'${HEREDOC_END}'`,
    ...envFile,
    HEREDOC_END,
    "chmod 0644 /etc/pristine/agent.env",
    "",
    `cat >/etc/systemd/system/pristine-data-disk.service <<'${HEREDOC_END}'`,
    "[Unit]",
    `Description=Pristine data disk on ${HOST_DATA_DIR}`,
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=/usr/local/sbin/pristine-data-disk ${storage.kind}`,
    "[Install]",
    "WantedBy=multi-user.target",
    HEREDOC_END,
    `cat >/etc/systemd/system/${AGENT_SERVICE} <<'${HEREDOC_END}'`,
    "[Unit]",
    `Description=Pristine host agent ${hostId} (QEMU/KVM, datastore ${HOST_DATASTORE_PATH})`,
    "Requires=pristine-data-disk.service",
    "After=pristine-data-disk.service network-online.target",
    "Wants=network-online.target",
    "[Service]",
    "User=pristine",
    "Group=pristine",
    "SupplementaryGroups=kvm",
    "EnvironmentFile=/etc/pristine/agent.env",
    `WorkingDirectory=${HOST_DATA_DIR}`,
    `RuntimeDirectory=${HOST_VM_RUN_DIR.replace(/^\/run\//, "")}`,
    "RuntimeDirectoryMode=0700",
    `ExecStartPre=/usr/bin/mountpoint -q ${HOST_DATA_DIR}`,
    `ExecStartPre=-+/usr/local/sbin/pristine-guest-files s3://${options.imagesBucketName}/${GUEST_BOOT_FILES_PREFIX} ${region}`,
    "ExecStart=/opt/node/bin/node /opt/pristine/agent.mjs --workers host",
    "Restart=always",
    "RestartSec=5",
    "# SIGTERM to the agent only: it stops its VMs itself; what is left is killed after the timeout.",
    "KillMode=mixed",
    "TimeoutStopSec=180",
    "NoNewPrivileges=yes",
    "ProtectSystem=full",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "[Install]",
    "WantedBy=multi-user.target",
    HEREDOC_END,
    "systemctl daemon-reload",
    `systemctl enable pristine-data-disk.service ${AGENT_SERVICE}`,
    "# Enabled, so it starts on every boot even when this script fails; restarted here so that it runs the",
    "# bundle and environment just written (--no-block: do not wait for it inside cloud-init).",
    `systemctl restart --no-block ${AGENT_SERVICE}`,
    `echo "pristine host ${hostId}: setup done"`,
  );

  const userData = new ec2.MultipartUserData();
  userData.addPart(
    ec2.MultipartBody.fromRawBody({
      contentType: 'text/cloud-config; charset="utf-8"',
      body: ["#cloud-config", "cloud_final_modules:", "  - [scripts-user, always]", ""].join("\n"),
    }),
  );
  userData.addUserDataPart(shell, ec2.MultipartBody.SHELL_SCRIPT, true);
  return userData;
}
