import { Stack, Validations } from "aws-cdk-lib";
import type { IConstruct } from "constructs";

// cdk-nag 3 runs as a CDK policy-validation plugin; findings are acknowledged with CDK's own
// Validations.of(construct).acknowledge(), one finding id at a time (no prefix matching), e.g.
// `AwsSolutions-IAM5[Resource::<ImagesBucket1234.Arn>/*]`.

/** The string cdk-nag uses for a CloudFormation value in a finding id (as its flattenCfnReference). */
export function flattenCfnValue(value: unknown): string {
  if (value === undefined) return "";
  if (typeof value === "string") return value.replace(/\$\{/g, "<").replace(/}/g, ">");
  if (typeof value === "object" && value !== null) {
    const node = value as Record<string, unknown>;
    if (Array.isArray(node["Fn::Join"])) {
      const [delimiter, items] = node["Fn::Join"] as [string, unknown[]];
      return items.map(flattenCfnValue).join(delimiter);
    }
    if (node["Fn::Sub"] !== undefined) return flattenCfnValue(node["Fn::Sub"]);
    if (Array.isArray(node["Fn::GetAtt"])) {
      const [resource, attribute] = node["Fn::GetAtt"] as [unknown, unknown];
      return `<${flattenCfnValue(resource)}.${flattenCfnValue(attribute)}>`;
    }
    if (node["Fn::ImportValue"] !== undefined) return flattenCfnValue(node["Fn::ImportValue"]);
    if (node.Ref !== undefined) return `<${flattenCfnValue(node.Ref)}>`;
  }
  return JSON.stringify(value);
}

/**
 * Acknowledge AwsSolutions-IAM5 for wildcard resources (e.g. `arn:...:bucket/*`) granted to the
 * policies under `scope`. `resources` are the ARNs exactly as granted (tokens allowed).
 */
export function acknowledgeWildcardResources(scope: IConstruct, resources: string[], reason: string): void {
  const stack = Stack.of(scope);
  for (const resource of resources) {
    const flat = flattenCfnValue(stack.resolve(resource));
    Validations.of(scope).acknowledge({ id: `AwsSolutions-IAM5[Resource::${flat}]`, reason });
  }
}
