/**
 * What can go wrong in a CLI run, and the exit code a script sees for it (documented in
 * `pristine --help` and docs/cli.md). Pure: no I/O, so the mapping is unit-tested as it is.
 */
import type { Problem as ApiProblem } from "../shared/http/problem.ts";

export const exitCodes = {
  ok: 0,
  /** A bad argument, an unknown command, a missing or unsafe profile, a file that cannot be written. */
  usage: 2,
  /** The API refused the request (a 4xx problem). */
  refused: 3,
  /** The API failed (5xx) or could not be reached. */
  server: 4,
  /** A --wait ended in failure or ran out of time. */
  waitFailed: 5,
} as const;
export type ExitCode = (typeof exitCodes)[keyof typeof exitCodes];

/** The API's problem+json body (RFC 9457); any field may be missing from what stands in for one. */
export type Problem = Partial<ApiProblem>;

export class UsageError extends Error {}

/** The API answered with an error status: 4xx refusals and 5xx failures alike. */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem | undefined;
  constructor(status: number, problem: Problem | undefined, statusText = "") {
    super(formatProblem(status, problem, statusText));
    this.status = status;
    this.problem = problem;
  }
}

/** The API could not be reached (refused, reset, DNS, TLS). */
export class Unreachable extends Error {}

/** A --wait that saw the work fail, or ran out of time. */
export class WaitFailed extends Error {}

/** The last segment of a problem's `type` URI: the stable slug a script matches on. */
export function problemSlug(type: string | undefined): string | undefined {
  if (!type || type === "about:blank") return undefined;
  return type.replace(/\/+$/, "").split("/").pop() || undefined;
}

/** One line: `404 not-found: pool p-123 does not exist`, with the field when the detail lacks it. */
export function formatProblem(status: number, problem: Problem | undefined, statusText = ""): string {
  const slug = problemSlug(problem?.type);
  const what = problem?.detail || problem?.title || statusText || "no detail given";
  const field = problem?.field && !what.includes(problem.field) ? ` (field ${problem.field})` : "";
  return oneLine(`${status}${slug ? ` ${slug}` : ""}: ${what}${field}`);
}

export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}

export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof UsageError) return exitCodes.usage;
  if (err instanceof WaitFailed) return exitCodes.waitFailed;
  if (err instanceof ApiError)
    return err.status >= 400 && err.status < 500 ? exitCodes.refused : exitCodes.server;
  if (err instanceof Unreachable) return exitCodes.server;
  if (isCommanderError(err)) return commanderExitCode(err.code);
  // A local file that cannot be read or written (the API's failures are ApiError or Unreachable).
  if (err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === "string")
    return exitCodes.usage;
  // Anything else is a bug.
  return exitCodes.server;
}

/** Help and version end a run normally; every other parse error is a usage error. */
export function commanderExitCode(code: string): ExitCode {
  return code === "commander.helpDisplayed" || code === "commander.version" ? exitCodes.ok : exitCodes.usage;
}

function isCommanderError(err: unknown): err is { code: string } {
  const code = err instanceof Error ? (err as Error & { code?: unknown }).code : undefined;
  return typeof code === "string" && code.startsWith("commander.");
}

/** The one line a failed run writes to stderr. */
export function errorLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return `error: ${oneLine(message.replace(/^error:\s*/i, ""))}`;
}
