/**
 * Every path built from ids is built here: each id must be one plain path segment, and the result
 * must stay under its root. A user id of `..` or an id with a slash can never name another
 * tenant's (or the system's) files.
 */
import { isAbsolute, join, relative } from "node:path";

export class UnsafePathError extends Error {
  constructor(segment: string) {
    super(`refused an unsafe path segment ${JSON.stringify(segment)}`);
    this.name = "UnsafePathError";
  }
}

/** Whether `segment` is one plain path segment (no `.`/`..`, no separator, no NUL, not empty). */
export const isPlainSegment = (segment: string) =>
  segment.length > 0 && segment !== "." && segment !== ".." && !/[/\\\0]/.test(segment);

/** True when `path` is `root` itself or lies beneath it (lexically). */
export function isWithin(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/** Joins plain segments under a root; throws for any segment that could leave it. */
export function pathUnder(root: string, ...segments: string[]): string {
  for (const s of segments) if (!isPlainSegment(s)) throw new UnsafePathError(s);
  const path = join(root, ...segments);
  if (!isWithin(root, path)) throw new UnsafePathError(segments.join("/"));
  return path;
}
