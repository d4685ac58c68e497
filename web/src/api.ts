/** The API, called with the key the user typed (kept in sessionStorage only, sent as a Bearer token). */
import type { Problem as ApiProblem } from "../../shared/http/problem.ts";

const keyItem = "pristine.apiKey";

export const storedKey = {
  get: (): string | null => sessionStorage.getItem(keyItem),
  set: (key: string) => sessionStorage.setItem(keyItem, key),
  clear: () => sessionStorage.removeItem(keyItem),
};

/** An application/problem+json answer (or what stood in for one). */
export type Problem = Partial<ApiProblem>;

export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem;
  constructor(status: number, problem: Problem) {
    super(`${problem.title ?? `HTTP ${status}`}${problem.detail ? `: ${problem.detail}` : ""}`);
    this.status = status;
    this.problem = problem;
  }
}

async function call(path: string, init: RequestInit = {}, key = storedKey.get()): Promise<Response> {
  const headers = new Headers(init.headers);
  if (key) headers.set("authorization", `Bearer ${key}`);
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers, cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, { title: "Network error", detail: (err as Error).message });
  }
  if (!response.ok) {
    const text = await response.text();
    let problem: Problem;
    try {
      problem = JSON.parse(text) as Problem;
    } catch {
      problem = { title: `HTTP ${response.status}`, detail: text.slice(0, 200) };
    }
    throw new ApiError(response.status, { status: response.status, ...problem });
  }
  return response;
}

export async function getJson<T>(path: string, key?: string): Promise<T> {
  return (await (await call(path, {}, key)).json()) as T;
}

export async function postJson<T>(path: string, body: unknown): Promise<{ status: number; body: T }> {
  const response = await call(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as T };
}

export async function getBlob(path: string): Promise<Blob> {
  return (await call(path)).blob();
}

export const enc = encodeURIComponent;
