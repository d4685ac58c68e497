import { readFileSync } from "node:fs";
import path from "node:path";
import { App } from "aws-cdk-lib";
import type { Template } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readConfig } from "../../infra/config.ts";
import {
  AGENT_SERVICE,
  HOST_DATASTORE_PATH,
  HOST_EVENT_BUS_NAME,
  HOST_VM_RUN_DIR,
  UBUNTU_AMI_PARAMETER,
} from "../../infra/constructs/host-setup.ts";
import { definePristineApp } from "../../infra/pristine-app.ts";
import type { PristineStack } from "../../infra/pristine-stack.ts";
import { loadConfig } from "../../shared/config.ts";
import { registerDatastoreBody } from "../../shared/http/schemas.ts";
import {
  allStatements,
  asArray,
  CDK_CONTEXT,
  type Json,
  logicalId,
  ROOT,
  removeSynthOutputs,
  resourcesOf,
  roleStatements,
  type Synthesized,
  synthesize,
  violationsOf,
} from "./synth.ts";

// pristine:hostFleet: bare-metal EC2 hosts that run the host agent. Off by default (the default
// app has no EC2 instance: see stacks.test.ts); here it is on, in two shapes.

afterAll(removeSynthOutputs);

const HOST_DATASTORES = ["host-a-ssd", "host-b-ssd", "host-c-ssd"];
const FLEET = ["host-a-ssd", "host-b-ssd"];

/** The variables the agent is started with (the task's list), beyond what shared/config.ts reads. */
const AGENT_VARIABLES = [
  "AWS_REGION",
  "PRISTINE_REGION_NAME",
  "PRISTINE_TABLE_NAME",
  "PRISTINE_CLONE_JOBS_QUEUE_URL",
  "PRISTINE_DATASTORE_QUEUE_URLS",
  "PRISTINE_USER_DATA_QUEUE_URL",
  "PRISTINE_REPLICATION_QUEUE_URL",
  "PRISTINE_DATA_DIR",
  "PRISTINE_DATASTORE_ID",
  "PRISTINE_DATASTORE_PATH",
  "PRISTINE_DATASTORE_OVERCOMMIT",
  "PRISTINE_HOST_ID",
  "PRISTINE_HYPERVISOR",
  "PRISTINE_EVENT_BUS_NAME",
  "PRISTINE_VM_RUN_DIR",
  "PRISTINE_GUEST_KERNEL",
  "PRISTINE_GUEST_INITRD",
  "POWERTOOLS_SERVICE_NAME",
  "NODE_OPTIONS",
];

function fleetContext(fleet: Json, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    "pristine:account": "123456789012",
    "pristine:stage": "test",
    "pristine:natForReplication": "true",
    "pristine:datastore": JSON.stringify({ id: "efs-1", hostDatastores: HOST_DATASTORES }),
    "pristine:hostFleet": JSON.stringify(fleet),
    ...extra,
  };
}

/** A CloudFormation value as text: Ref and Fn::GetAtt become {{Ref:Id}} / {{GetAtt:Id.Attr}}. */
function cfnText(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  const node = value as Json;
  if (node["Fn::Base64"] !== undefined) return cfnText(node["Fn::Base64"]);
  if (node["Fn::Join"]) {
    const [delimiter, parts] = node["Fn::Join"] as [string, unknown[]];
    return parts.map(cfnText).join(delimiter);
  }
  if (node.Ref !== undefined) return `{{Ref:${node.Ref}}}`;
  if (node["Fn::GetAtt"]) return `{{GetAtt:${(node["Fn::GetAtt"] as string[]).join(".")}}}`;
  if (node["Fn::Sub"] !== undefined) return cfnText(node["Fn::Sub"]);
  return JSON.stringify(value);
}

/** The shell script part of a host's user data (the multipart's second part). */
function shellScript(userData: string): string {
  const parts = userData.split(/^--\+AWS\+CDK\+User\+Data\+Separator==/m);
  const shell = parts.find((p) => p.includes("Content-Type: text/x-shellscript"));
  return shell?.split("\n\n").slice(1).join("\n\n") ?? "";
}

/** The agent's environment file, as written by the user data. */
function agentEnvironment(script: string): Record<string, string> {
  const body = /cat >\/etc\/pristine\/agent\.env <<'PRISTINE_EOF'\n([\s\S]*?)\nPRISTINE_EOF/.exec(
    script,
  )?.[1];
  const env: Record<string, string> = {};
  for (const line of (body ?? "").split("\n")) {
    const match = /^([A-Z_][A-Z0-9_]*)='([^']*)'$/.exec(line);
    expect(match, line).not.toBeNull();
    if (match?.[1] && match[2] !== undefined) env[match[1]] = match[2];
  }
  return env;
}

interface HostView {
  readonly instanceId: string;
  readonly instance: Json;
  readonly userData: string;
  readonly script: string;
  readonly env: Record<string, string>;
}

function hostView(stack: PristineStack, template: Template, hostId: string): HostView {
  const host = stack.hostFleet?.hosts.get(hostId);
  expect(host, hostId).toBeDefined();
  const instanceId = logicalId(stack, host?.instance as never);
  const instance = resourcesOf(template, "AWS::EC2::Instance")[instanceId] as Json;
  const userData = cfnText(instance.Properties.UserData);
  const script = shellScript(userData);
  return { instanceId, instance, userData, script, env: agentEnvironment(script) };
}

function subnetType(template: Template, subnet: Json): string | undefined {
  const subnets = resourcesOf(template, "AWS::EC2::Subnet");
  return asArray<Json>(subnets[subnet.Ref]?.Properties.Tags).find((t) => t.Key === "aws-cdk:subnet-type")
    ?.Value;
}

describe("with pristine:hostFleet (m5zn.metal, two of three host datastores, primary only)", () => {
  let synth: Synthesized;
  let primary: PristineStack;
  let template: Template;
  beforeAll(() => {
    synth = synthesize(fleetContext({ instanceType: "m5zn.metal", hosts: FLEET }));
    primary = synth.pristine.primary;
    template = synth.templates.get(primary) as Template;
  });

  it("passes cdk-nag, every acknowledgement with a reason", () => {
    expect(violationsOf(synth.report, "AwsSolutions")).toEqual([]);
    const errors = violationsOf(synth.report, "Construct Annotations").filter((v) => v.severity === "error");
    expect(errors).toEqual([]);
    const suppressions = Object.values(template.toJSON().Resources as Record<string, Json>).flatMap(
      (r) => (r.Metadata?.cdk_nag?.rules_to_suppress ?? []) as Json[],
    );
    const ids = new Set(suppressions.map((s) => s.id));
    expect(ids).toContain("AwsSolutions-EC29");
    expect(ids).toContain(
      "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]",
    );
    for (const s of suppressions) expect(String(s.reason).length, s.id).toBeGreaterThan(40);
  });

  it("runs one bare-metal instance per configured host, and none in the DR region", () => {
    const instances = resourcesOf(template, "AWS::EC2::Instance");
    expect(Object.keys(instances)).toHaveLength(FLEET.length);
    for (const instance of Object.values(instances)) {
      expect(instance.Properties.InstanceType).toBe("m5zn.metal");
    }
    expect([...(primary.hostFleet?.hosts.keys() ?? [])]).toEqual(FLEET);
    template.resourceCountIs("AWS::AutoScaling::AutoScalingGroup", 0);
    const dr = synth.templates.get(synth.pristine.dr) as Template;
    dr.resourceCountIs("AWS::EC2::Instance", 0);
    expect(synth.pristine.dr.hostFleet).toBeUndefined();
  });

  it("puts the hosts in private subnets (one per zone), without public addresses or inbound rules", () => {
    const subnets = FLEET.map((hostId) => hostView(primary, template, hostId).instance.Properties.SubnetId);
    for (const subnet of subnets) expect(subnetType(template, subnet)).toBe("Private");
    expect(new Set(subnets.map((s) => s.Ref)).size).toBe(FLEET.length);
    const securityGroupId = logicalId(primary, primary.hostFleet?.securityGroup as never);
    for (const hostId of FLEET) {
      const props = hostView(primary, template, hostId).instance.Properties;
      expect(props.NetworkInterfaces).toBeUndefined();
      expect(props.SecurityGroupIds).toEqual([{ "Fn::GetAtt": [securityGroupId, "GroupId"] }]);
      expect(props.MetadataOptions).toMatchObject({ HttpTokens: "required" });
      expect(props.Monitoring).toBe(true);
      for (const mapping of props.BlockDeviceMappings as Json[]) expect(mapping.Ebs.Encrypted).toBe(true);
    }
    const group = resourcesOf(template, "AWS::EC2::SecurityGroup")[securityGroupId];
    expect(group?.Properties.SecurityGroupIngress).toBeUndefined();
    const fromHosts = JSON.stringify({ "Fn::GetAtt": [securityGroupId, "GroupId"] });
    const ingress = Object.values(resourcesOf(template, "AWS::EC2::SecurityGroupIngress")).filter(
      (i) => JSON.stringify(i.Properties.SourceSecurityGroupId) === fromHosts,
    );
    // Its only way in anywhere: HTTPS to the SQS endpoint, whose private DNS serves the whole VPC.
    expect(ingress.map((i) => [i.Properties.FromPort, i.Properties.ToPort])).toEqual([[443, 443]]);
  });

  it("gives each instance the existing agent role of its datastore, through an instance profile", () => {
    const profiles = resourcesOf(template, "AWS::IAM::InstanceProfile");
    const roles = resourcesOf(template, "AWS::IAM::Role");
    for (const hostId of FLEET) {
      const { instance } = hostView(primary, template, hostId);
      const profile = profiles[instance.Properties.IamInstanceProfile.Ref];
      const roleId = logicalId(primary, primary.workers.agentRoles.get(hostId) as never);
      expect(profile?.Properties.Roles).toEqual([{ Ref: roleId }]);
      const trust = JSON.stringify(roles[roleId]?.Properties.AssumeRolePolicyDocument);
      expect(trust).toContain("ec2.amazonaws.com");
      expect(roles[roleId]?.Properties.ManagedPolicyArns).toHaveLength(1);
      expect(JSON.stringify(roles[roleId]?.Properties.ManagedPolicyArns)).toContain(
        "AmazonSSMManagedInstanceCore",
      );
    }
    // The agent role of a host datastore outside the fleet (on premises) is left as it was.
    const other = roles[logicalId(primary, primary.workers.agentRoles.get("host-c-ssd") as never)];
    expect(JSON.stringify(other?.Properties.AssumeRolePolicyDocument)).not.toContain("ec2.amazonaws.com");
    expect(other?.Properties.ManagedPolicyArns).toBeUndefined();
    expect(Object.keys(profiles)).toHaveLength(FLEET.length);
  });

  it("lets the fleet's agents put the desktops' session events on the default bus, and nothing else anywhere", () => {
    const putEvents = allStatements(template).filter((st) =>
      asArray<string>(st.Action).some((a) => a.startsWith("events:")),
    );
    expect(putEvents).toHaveLength(FLEET.length);
    // The pattern of the rule that routes them to the logoff queue.
    const rule = Object.values(resourcesOf(template, "AWS::Events::Rule")).find(
      (r) => r.Properties.EventPattern,
    );
    const pattern = rule?.Properties.EventPattern as Json;
    expect(rule?.Properties.EventBusName).toBeUndefined(); // the default bus
    for (const hostId of FLEET) {
      const roleId = logicalId(primary, primary.workers.agentRoles.get(hostId) as never);
      const statements = roleStatements(template, roleId).filter((st) =>
        asArray<string>(st.Action).some((a) => a.startsWith("events:")),
      );
      expect(statements).toHaveLength(1);
      const [st] = statements as [Json];
      expect(st.Effect).toBe("Allow");
      expect(st.Action).toBe("events:PutEvents");
      expect(cfnText(st.Resource)).toBe(
        `arn:aws:events:${primary.region}:123456789012:event-bus/${HOST_EVENT_BUS_NAME}`,
      );
      expect(st.Condition).toEqual({
        StringEquals: { "events:source": pattern.source, "events:detail-type": pattern["detail-type"] },
      });
    }
    // No wildcard action, and no Resource "*" in what the fleet's roles may do.
    for (const hostId of FLEET) {
      const roleId = logicalId(primary, primary.workers.agentRoles.get(hostId) as never);
      for (const st of roleStatements(template, roleId)) {
        for (const action of asArray<string>(st.Action))
          expect(action, JSON.stringify(st)).not.toContain("*");
        expect(asArray(st.Resource), JSON.stringify(st)).not.toContain("*");
      }
    }
  });

  it("lets each agent fetch its bundle (that one object) and send only where its environment points", () => {
    const bundle = primary.hostFleet?.agentBundle;
    for (const hostId of FLEET) {
      const roleId = logicalId(primary, primary.workers.agentRoles.get(hostId) as never);
      const statements = roleStatements(template, roleId);
      const gets = statements.filter((st) => st.Sid === "GetAgentBundle");
      expect(gets).toHaveLength(1);
      expect(cfnText(gets[0]?.Resource)).toBe(
        `arn:aws:s3:::cdk-hnb659fds-assets-123456789012-${primary.region}/${bundle?.s3ObjectKey}`,
      );
      const { script } = hostView(primary, template, hostId);
      expect(script).toContain(`/${bundle?.s3ObjectKey}" /opt/pristine/agent.mjs.new`);
      const sendTargets = statements
        .filter((st) => asArray<string>(st.Action).includes("sqs:SendMessage"))
        .flatMap((st) => asArray<Json>(st.Resource).map((r) => r["Fn::GetAtt"]?.[0]));
      const queueId = (q: { queue: unknown }) => logicalId(primary, q.queue as never);
      expect(sendTargets.sort()).toEqual(
        [
          queueId(primary.queues.byKind["clone-jobs"]),
          queueId(primary.queues.byKind.replication),
          queueId(primary.queues.byKind["user-data"]),
          ...HOST_DATASTORES.map((id) => queueId(primary.queues.hostDatastores.get(id) as never)),
        ].sort(),
      );
    }
  });

  it("starts the agent as a systemd service with QEMU, Node 24 and the agent's environment", () => {
    const nodeVersion = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).devDependencies
      .node;
    for (const hostId of FLEET) {
      const { userData, script, env } = hostView(primary, template, hostId);
      // cloud-init runs the script on every boot, so a restart applies a changed user data.
      expect(userData).toContain("#cloud-config\ncloud_final_modules:\n  - [scripts-user, always]");
      expect(script.startsWith("#!/bin/bash\n")).toBe(true);
      expect(script).toContain("qemu-system-x86 qemu-utils");
      expect(script).toContain(`NODE_VERSION='${nodeVersion}'`);
      expect(script).toContain("sha256sum -c -");
      expect(script).toContain(`cat >/etc/systemd/system/${AGENT_SERVICE} <<'PRISTINE_EOF'`);
      expect(script).toContain("ExecStart=/opt/node/bin/node /opt/pristine/agent.mjs --workers host");
      expect(script).toContain("EnvironmentFile=/etc/pristine/agent.env");
      expect(script).toContain("SupplementaryGroups=kvm");
      expect(script).toContain(`RuntimeDirectory=${HOST_VM_RUN_DIR.replace("/run/", "")}`);
      expect(script).toContain("ExecStart=/usr/local/sbin/pristine-data-disk gp3");
      expect(script).toContain(`systemctl enable pristine-data-disk.service ${AGENT_SERVICE}`);
      expect(Object.keys(env).sort()).toEqual([...AGENT_VARIABLES, "PRISTINE_DATASTORE_CAPACITY_GIB"].sort());
      expect(env).toMatchObject({
        AWS_REGION: primary.region,
        PRISTINE_REGION_NAME: primary.region,
        PRISTINE_TABLE_NAME: `{{Ref:${logicalId(primary, primary.data.table)}}}`,
        PRISTINE_CLONE_JOBS_QUEUE_URL: `{{Ref:${logicalId(primary, primary.queues.byKind["clone-jobs"].queue)}}}`,
        PRISTINE_USER_DATA_QUEUE_URL: `{{Ref:${logicalId(primary, primary.queues.byKind["user-data"].queue)}}}`,
        PRISTINE_REPLICATION_QUEUE_URL: `{{Ref:${logicalId(primary, primary.queues.byKind.replication.queue)}}}`,
        PRISTINE_DATASTORE_ID: hostId,
        PRISTINE_DATASTORE_PATH: HOST_DATASTORE_PATH,
        PRISTINE_DATASTORE_CAPACITY_GIB: "1000",
        PRISTINE_HOST_ID: hostId,
        PRISTINE_HYPERVISOR: "qemu",
        PRISTINE_EVENT_BUS_NAME: "default",
        PRISTINE_VM_RUN_DIR: "/run/pristine/vms",
      });
      expect(env.PRISTINE_GUEST_KERNEL).toMatch(/^\/var\/lib\/pristine\/guest\/vmlinuz$/);
      expect(env.PRISTINE_GUEST_INITRD).toMatch(/^\/var\/lib\/pristine\/guest\/initrd\.img$/);
      expect(JSON.parse(env.PRISTINE_DATASTORE_QUEUE_URLS ?? "{}")).toEqual(
        Object.fromEntries(
          HOST_DATASTORES.map((id) => [
            id,
            `{{Ref:${logicalId(primary, primary.queues.hostDatastores.get(id)?.queue as never)}}}`,
          ]),
        ),
      );
    }
  });

  it("gives the agent an environment the code's configuration loads", () => {
    const { env } = hostView(primary, template, "host-a-ssd");
    const plausible = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [
        k,
        v.replace(/\{\{Ref:(\w+)\}\}/g, (_m, id: string) =>
          id.includes("Queue") ? `https://sqs.eu-west-1.amazonaws.com/123456789012/${id}` : `plausible-${id}`,
        ),
      ]),
    );
    const config = loadConfig(plausible);
    // It polls its own datastore's queue; jobs of no datastore go to the regional one.
    expect(config.datastoreQueueUrls["host-a-ssd"]).toContain(
      logicalId(primary, primary.queues.hostDatastores.get("host-a-ssd")?.queue as never),
    );
    expect(config.cloneJobsQueueUrl).toContain(logicalId(primary, primary.queues.byKind["clone-jobs"].queue));
    expect(config.awsRegion).toBe(primary.region);
    expect(config.defaultDatastore).toMatchObject({
      datastoreId: "host-a-ssd",
      path: HOST_DATASTORE_PATH,
      capacityGiB: 1000,
    });
    expect(config.dr?.userDataQueueUrl).toBeDefined();
    expect(config.dr?.replicationQueueUrl).toBeDefined();
  });

  it("keeps the datastore on a gp3 volume of its own, on an Ubuntu 24.04 AMI from SSM (with a warning)", () => {
    const { instance } = hostView(primary, template, "host-a-ssd");
    expect(instance.Properties.BlockDeviceMappings).toEqual([
      { DeviceName: "/dev/sda1", Ebs: { Encrypted: true, VolumeSize: 30, VolumeType: "gp3" } },
      {
        DeviceName: "/dev/sdf",
        Ebs: { DeleteOnTermination: true, Encrypted: true, Iops: 3000, VolumeSize: 1000, VolumeType: "gp3" },
      },
    ]);
    const parameter = instance.Properties.ImageId.Ref as string;
    expect(template.toJSON().Parameters[parameter]).toMatchObject({ Default: UBUNTU_AMI_PARAMETER });
    expect(instance.Properties.KeyName).toBeUndefined();
    expect(instance.Properties.DisableApiTermination).toBe(false);
    const warnings = violationsOf(synth.report, "Construct Annotations").filter((v) =>
      JSON.stringify(v).includes("pristine:hostAmiNotPinned"),
    );
    expect(warnings).toHaveLength(1);
  });

  it("outputs each host's instance id and datastore registration, and alarms on its status checks", () => {
    const outputs = template.toJSON().Outputs as Json;
    const topic = { Ref: logicalId(primary, primary.observability.topic) };
    const alarms = Object.values(resourcesOf(template, "AWS::CloudWatch::Alarm")).filter(
      (a) => a.Properties.Namespace === "AWS/EC2",
    );
    for (const hostId of FLEET) {
      const suffix = hostId.replace(/-/g, "");
      const { instanceId } = hostView(primary, template, hostId);
      expect(outputs[`Host${suffix}InstanceId`]?.Value).toEqual({ Ref: instanceId });
      // The output is a body the API takes as it is.
      const registration = JSON.parse(cfnText(outputs[`Host${suffix}DatastoreRegistration`]?.Value));
      expect(registerDatastoreBody.parse(registration)).toEqual({
        datastoreId: hostId,
        hostId,
        path: HOST_DATASTORE_PATH,
        capacityGiB: 1000,
        overcommit: 4,
      });
      const alarm = alarms.find((a) => JSON.stringify(a.Properties.Dimensions).includes(instanceId));
      expect(alarm?.Properties).toMatchObject({ MetricName: "StatusCheckFailed", AlarmActions: [topic] });
    }
    expect(Object.keys(outputs).filter((k) => k.startsWith("Host"))).toHaveLength(2 * FLEET.length);
    expect(
      registerDatastoreBody.safeParse(JSON.parse(cfnText(outputs.DatastoreRegistration?.Value))).success,
    ).toBe(true);
  });
});

describe("with pristine:hostFleet in both regions, on instance store, with a key pair and pinned AMIs (prod)", () => {
  let synth: Synthesized;
  beforeAll(() => {
    synth = synthesize(
      fleetContext(
        {
          instanceType: "m5d.metal",
          hosts: ["host-c-ssd"],
          keyName: "ops",
          regions: ["primary", "dr"],
          storage: { kind: "instance-store" },
          amiIds: { "eu-west-1": "ami-0123456789abcdef0", "eu-central-1": "ami-0fedcba9876543210" },
        },
        { "pristine:stage": "prod" },
      ),
    );
  });

  it("runs the host in each region on its pinned AMI, with the key pair and termination protection", () => {
    expect(violationsOf(synth.report, "AwsSolutions")).toEqual([]);
    expect(JSON.stringify(violationsOf(synth.report, "Construct Annotations"))).not.toContain(
      "pristine:hostAmiNotPinned",
    );
    // The pinned AMI id is acknowledged (CloudFormation Validate would warn about it).
    expect(violationsOf(synth.report, "CloudFormation Validate")).toEqual([]);
    for (const [stack, ami] of [
      [synth.pristine.primary, "ami-0123456789abcdef0"],
      [synth.pristine.dr, "ami-0fedcba9876543210"],
    ] as const) {
      const template = synth.templates.get(stack) as Template;
      template.resourceCountIs("AWS::EC2::Instance", 1);
      const { instance, script, env } = hostView(stack, template, "host-c-ssd");
      expect(instance.Properties).toMatchObject({
        InstanceType: "m5d.metal",
        ImageId: ami,
        KeyName: "ops",
        DisableApiTermination: true,
      });
      // The root volume only: the datastore is the instance store, formatted by the script.
      expect(instance.Properties.BlockDeviceMappings).toHaveLength(1);
      expect(script).toContain("ExecStart=/usr/local/sbin/pristine-data-disk instance-store");
      expect(env.PRISTINE_DATASTORE_CAPACITY_GIB).toBeUndefined();
      expect(env.AWS_REGION).toBe(stack.region);
      expect((template.toJSON().Outputs as Json).HosthostcssdDatastoreRegistration).toBeUndefined();
    }
  });
});

describe("pristine:hostFleet validation", () => {
  const base = fleetContext({ instanceType: "m5zn.metal", hosts: ["host-a-ssd"] });
  const config = (fleet: unknown, extra: Record<string, unknown> = {}) =>
    readConfig(new App({ context: { ...base, "pristine:hostFleet": fleet, ...extra } }).node);

  it("is off when unset or false, and reads JSON text or an object", () => {
    expect(readConfig(new App({ context: CDK_CONTEXT }).node).hostFleet).toBeUndefined();
    expect(config(undefined).hostFleet).toBeUndefined();
    expect(config("false").hostFleet).toBeUndefined();
    const fleet = config('{"instanceType":"c7i.metal-24xl","hosts":["host-b-ssd","host-a-ssd"]}').hostFleet;
    expect(fleet).toEqual({
      instanceType: "c7i.metal-24xl",
      hosts: ["host-b-ssd", "host-a-ssd"],
      keyName: undefined,
      regions: ["primary"],
      storage: { kind: "gp3", sizeGiB: 1000, iops: 3000 },
      amiIds: {},
    });
    expect(config({ instanceType: "m5zn.metal", hosts: ["host-a-ssd"] }).hostFleet?.hosts).toEqual([
      "host-a-ssd",
    ]);
  });

  it.each([
    [
      "an unknown host id",
      { instanceType: "m5zn.metal", hosts: ["host-z"] },
      /hostFleet\.hosts: unknown host id "host-z"/,
    ],
    [
      "an empty host list",
      { instanceType: "m5zn.metal", hosts: [] },
      /hostFleet\.hosts: must be a non-empty list/,
    ],
    ["no host list", { instanceType: "m5zn.metal" }, /hostFleet\.hosts/],
    [
      "a repeated host",
      { instanceType: "m5zn.metal", hosts: ["host-a-ssd", "host-a-ssd"] },
      /hostFleet\.hosts/,
    ],
    [
      "a virtualized instance type",
      { instanceType: "m5zn.12xlarge", hosts: ["host-a-ssd"] },
      /hostFleet\.instanceType/,
    ],
    [
      "a Graviton metal type",
      { instanceType: "m7g.metal", hosts: ["host-a-ssd"] },
      /hostFleet\.instanceType/,
    ],
    ["a mac metal type", { instanceType: "mac2.metal", hosts: ["host-a-ssd"] }, /hostFleet\.instanceType/],
    ["no instance type", { hosts: ["host-a-ssd"] }, /hostFleet\.instanceType/],
    [
      "a misspelt setting",
      { instanceType: "m5zn.metal", hosts: ["host-a-ssd"], host: ["x"] },
      /hostFleet\.host:/,
    ],
    [
      "a bad region role",
      { instanceType: "m5zn.metal", hosts: ["host-a-ssd"], regions: ["west"] },
      /hostFleet\.regions/,
    ],
    [
      "a bad storage kind",
      { instanceType: "m5zn.metal", hosts: ["host-a-ssd"], storage: { kind: "nvme" } },
      /hostFleet\.storage\.kind/,
    ],
    [
      "too many IOPS",
      { instanceType: "m5zn.metal", hosts: ["host-a-ssd"], storage: { sizeGiB: 100, iops: 20000 } },
      /hostFleet\.storage\.iops/,
    ],
    [
      "a bad AMI id",
      { instanceType: "m5zn.metal", hosts: ["host-a-ssd"], amiIds: { "eu-west-1": "ubuntu" } },
      /hostFleet\.amiIds\.eu-west-1/,
    ],
    [
      "an AMI of another region",
      { instanceType: "m5zn.metal", hosts: ["host-a-ssd"], amiIds: { "us-east-1": "ami-12345678" } },
      /hostFleet\.amiIds\.us-east-1/,
    ],
    [
      "a bad key pair name",
      { instanceType: "m5zn.metal", hosts: ["host-a-ssd"], keyName: "" },
      /hostFleet\.keyName/,
    ],
    ["a list", ["host-a-ssd"], /pristine:hostFleet: must be an object/],
    ["broken JSON", "{instanceType", /pristine:hostFleet: not valid JSON/],
  ])("rejects %s, naming the field", (_what, fleet, message) => {
    expect(() => config(typeof fleet === "string" ? fleet : JSON.stringify(fleet))).toThrow(message);
  });

  it("needs the NAT gateway of pristine:natForReplication", () => {
    expect(() => config(base["pristine:hostFleet"], { "pristine:natForReplication": "false" })).toThrow(
      /pristine:hostFleet: needs pristine:natForReplication=true/,
    );
  });

  it("fails synth (cdk synth runs definePristineApp) on an invalid value", () => {
    const app = new App({
      context: { ...base, "pristine:hostFleet": '{"instanceType":"m5zn.metal","hosts":["nope"]}' },
    });
    expect(() => definePristineApp(app)).toThrow(
      /Invalid context pristine:hostFleet\.hosts: unknown host id "nope"/,
    );
  });
});
