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
