/** Argument parsers for commander: a bad value is a usage error (exit 2) before anything is sent. */
import { InvalidArgumentError } from "commander";
import type { z } from "zod";
import { UsageError } from "./errors.ts";

export function integer(value: string): number {
  if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError("must be a whole number");
  return Number(value);
}

export function number(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError("must be a number");
  return n;
}

export function seconds(value: string): number {
  const n = number(value);
  if (n <= 0) throw new InvalidArgumentError("must be a positive number of seconds");
  return n;
}

/** Checks a request body with the API's own schema (one contract), before it is sent. */
export function validBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue?.path.length ? issue.path.map(String).join(".") : "input";
  throw new UsageError(`${field}: ${issue?.message ?? "invalid"}`);
}

/** Checks one path parameter (an id) with the API's schema. */
export function validId<S extends z.ZodType>(schema: S, what: string, value: string): string {
  const parsed = schema.safeParse(value);
  if (!parsed.success)
    throw new UsageError(`${what} ${JSON.stringify(value)}: ${parsed.error.issues[0]?.message ?? "invalid"}`);
  return value;
}
