import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";

export interface LostResponses {
  /** Requests whose answer was thrown away so far. */
  lost: { command: string; input: unknown }[];
  remove(): void;
}

/**
 * A lost answer, as the network loses one: the request reaches DynamoDB Local and is applied,
 * then the client sees a connection reset instead of the response, and the SDK retries it. A
 * middleware on the real client, inside the SDK's retry loop; `lose` picks the requests.
 */
export function loseResponses(
  client: DynamoDBClient,
  lose: (command: string, input: Record<string, any>) => boolean,
): LostResponses {
  const name = `lose-responses-${Math.random().toString(36).slice(2)}`;
  const state: LostResponses = {
    lost: [],
    remove: () => client.middlewareStack.remove(name),
  };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const out = await next(args);
      const command = String((context as { commandName?: string }).commandName ?? "");
      const input = (args as { input: Record<string, any> }).input;
      if (lose(command, input)) {
        state.lost.push({ command, input });
        throw Object.assign(new Error("socket hang up (response lost on purpose)"), { code: "ECONNRESET" });
      }
      return out;
    },
    { step: "deserialize", name },
  );
  return state;
}

/** Loses the answer of the first `times` requests that `match`, then lets every other through. */
export function loseFirst(
  client: DynamoDBClient,
  match: (command: string, input: Record<string, any>) => boolean,
  times = 1,
): LostResponses {
  let left = times;
  return loseResponses(client, (command, input) => {
    if (left <= 0 || !match(command, input)) return false;
    left--;
    return true;
  });
}

/**
 * Sends transactions without the idempotency token the SDK gives each one. With the token, a
 * retried transaction whose first attempt was applied is answered as done; without it (or after
 * the token's ten minutes) the retry is a new request and fails its conditions though it took.
 * This makes the second case happen on DynamoDB Local.
 */
export function withoutIdempotencyTokens(client: DynamoDBClient): { remove(): void } {
  const name = `no-idempotency-tokens-${Math.random().toString(36).slice(2)}`;
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = (args as { request?: { body?: unknown } }).request;
      const body =
        request?.body instanceof Uint8Array ? Buffer.from(request.body).toString("utf8") : request?.body;
      if (request && typeof body === "string" && body.includes('"ClientRequestToken"')) {
        const { ClientRequestToken: _, ...rest } = JSON.parse(body);
        request.body = JSON.stringify(rest);
      }
      return next(args);
    },
    // Before the body's length is set.
    { step: "build", priority: "high", name },
  );
  return { remove: () => client.middlewareStack.remove(name) };
}
