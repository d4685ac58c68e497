/**
 * The CLI's API client: bearer key, JSON in and out, problem+json turned into ApiError. Every write
 * (POST, PATCH, PUT, DELETE) carries an Idempotency-Key, random per request and the same on its retry,
 * so the one retry (on a connection reset, or a 503 with Retry-After) cannot do the work twice.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { ApiError, type Problem, Unreachable } from "./errors.ts";

export type Method = "GET" | "POST" | "PATCH" | "PUT" | "DELETE";

export interface RequestOptions {
  body?: unknown;
  /** false where a repeat after a lost answer would not be safe (tenant creation: no stored answer). */
  retryOnReset?: boolean;
}

/** Longest Retry-After the CLI waits before its one retry. */
const maxRetryAfterSeconds = 30;
const resetCodes = new Set(["ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "UND_ERR_CLOSED"]);

export class ApiClient {
  readonly baseUrl: string;
  readonly #key: string;
  constructor(baseUrl: string, key: string) {
    this.baseUrl = baseUrl;
    this.#key = key;
  }

  async json<T>(method: Method, path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.#send(method, path, options);
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async bytes(path: string): Promise<Buffer> {
    const res = await this.#send("GET", path, {});
    return Buffer.from(await res.arrayBuffer());
  }

  async #send(method: Method, path: string, options: RequestOptions): Promise<Response> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.#key}`,
      accept: "application/json",
    };
    if (method !== "GET") headers["idempotency-key"] = randomUUID();
    if (options.body !== undefined) headers["content-type"] = "application/json";
    const init: RequestInit = {
      method,
      headers,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    };
    const url = `${this.baseUrl}${path}`;
    let res: Response;
    try {
      res = await fetch(url, init);
    } catch (err) {
      if (!(options.retryOnReset ?? true) || !resetCodes.has(causeCode(err))) throw unreachable(url, err);
      res = await fetch(url, init).catch((again: unknown) => {
        throw unreachable(url, again);
      });
      return this.#check(res);
    }
    const retryAfter = Number(res.headers.get("retry-after"));
    if (res.status === 503 && Number.isFinite(retryAfter) && res.headers.has("retry-after")) {
      await res.body?.cancel();
      await sleep(Math.min(Math.max(retryAfter, 0), maxRetryAfterSeconds) * 1000);
      res = await fetch(url, init).catch((again: unknown) => {
        throw unreachable(url, again);
      });
    }
    return this.#check(res);
  }

  async #check(res: Response): Promise<Response> {
    if (res.ok) return res;
    const text = await res.text();
    let problem: Problem | undefined;
    try {
      const parsed = JSON.parse(text) as unknown;
      if (parsed && typeof parsed === "object") problem = parsed as Problem;
    } catch {
      problem = undefined;
    }
    throw new ApiError(res.status, problem, res.statusText);
  }
}

function causeCode(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === "string" ? cause.code : "";
}

function unreachable(url: string, err: unknown): Unreachable {
  const cause = (err as { cause?: { message?: string } }).cause;
  return new Unreachable(`cannot reach ${new URL(url).origin}: ${cause?.message ?? (err as Error).message}`);
}
