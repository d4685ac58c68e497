/**
 * A small HTTP proxy in front of DynamoDB Local that answers some requests as an overloaded
 * DynamoDB does: throttling (400 ThrottlingException), a 500 before the request is applied, or a
 * 500 after it was applied (the answer lost). The SDK retries them as it would in AWS.
 */
import { createServer, request } from "node:http";

export interface FaultRates {
  throttle: number;
  errorBefore: number;
  errorAfter: number;
}

export async function startDynamoFaultProxy(target: string, rates: FaultRates, random = Math.random) {
  const { hostname, port } = new URL(target);
  const counts = { requests: 0, throttled: 0, failedBefore: 0, failedAfter: 0 };
  let active = true;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      counts.requests++;
      const roll = random();
      const fail = (status: number, type: string, message: string) => {
        res.writeHead(status, { "content-type": "application/x-amz-json-1.0", "x-amzn-errortype": type });
        res.end(JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${type}`, message }));
      };
      if (active && roll < rates.throttle) {
        counts.throttled++;
        return fail(400, "ThrottlingException", "Rate of requests exceeds the allowed throughput.");
      }
      if (active && roll < rates.throttle + rates.errorBefore) {
        counts.failedBefore++;
        return fail(500, "InternalServerError", "Internal server error");
      }
      const loseAnswer = active && roll < rates.throttle + rates.errorBefore + rates.errorAfter;
      const upstream = request(
        {
          hostname: hostname === "localhost" ? "127.0.0.1" : hostname,
          port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (up) => {
          const body: Buffer[] = [];
          up.on("data", (c: Buffer) => body.push(c));
          up.on("end", () => {
            if (loseAnswer) {
              counts.failedAfter++;
              return fail(500, "InternalServerError", "Internal server error");
            }
            res.writeHead(up.statusCode ?? 502, up.headers);
            res.end(Buffer.concat(body));
          });
        },
      );
      upstream.on("error", () => fail(500, "InternalServerError", "upstream unreachable"));
      upstream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  return {
    url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`,
    counts,
    /** Faults on or off (setup runs without them). */
    setActive(on: boolean) {
      active = on;
    },
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}
