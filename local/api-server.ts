/**
 * The local stand-in for API Gateway (HTTP API, payload format 2.0): each request becomes the same
 * event the api Lambda receives in AWS, and the handler's result becomes the response.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { invokeLocally } from "./lambda-context.ts";

export type HttpApiHandler = (
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyStructuredResultV2>;

/** API Gateway refuses payloads over 10 MB before the Lambda runs. */
const gatewayMaxBytes = 10 * 1024 * 1024;

export type LocalRoute = (
  req: IncomingMessage,
  body: Buffer,
) => Promise<APIGatewayProxyStructuredResultV2 | undefined>;

async function readBody(req: IncomingMessage): Promise<Buffer | "too-large"> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > gatewayMaxBytes) return "too-large";
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export function toHttpApiEvent(req: IncomingMessage, body: Buffer): APIGatewayProxyEventV2 {
  const url = new URL(req.url ?? "/", "http://localhost");
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(",") : v;
  }
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = query[k] ? `${query[k]},${v}` : v;
  const text = body.toString("utf8");
  const isText = Buffer.from(text, "utf8").equals(body);
  const now = new Date();
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: url.pathname,
    rawQueryString: url.search.replace(/^\?/, ""),
    headers,
    ...(Object.keys(query).length ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: "000000000000",
      apiId: "local",
      domainName: headers.host ?? "localhost",
      domainPrefix: "local",
      http: {
        method: (req.method ?? "GET").toUpperCase(),
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? "127.0.0.1",
        userAgent: headers["user-agent"] ?? "",
      },
      requestId: randomUUID(),
      routeKey: "$default",
      stage: "$default",
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    ...(body.length > 0 ? { body: isText ? text : body.toString("base64") } : {}),
    isBase64Encoded: body.length > 0 && !isText,
  };
}

export function startApiServer(opts: {
  port: number;
  host?: string;
  handler: HttpApiHandler;
  /** Local-only extras (e.g. the EventBridge stand-in); answer undefined to fall through. */
  localRoute?: LocalRoute;
}): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer(async (req, res) => {
    const send = (r: APIGatewayProxyStructuredResultV2) => {
      const headers = { ...(r.headers as Record<string, string> | undefined) };
      res.writeHead(r.statusCode ?? 200, headers);
      res.end(r.body === undefined ? undefined : r.isBase64Encoded ? Buffer.from(r.body, "base64") : r.body);
    };
    try {
      const body = await readBody(req);
      if (body === "too-large") {
        res.writeHead(413, { "content-type": "application/json", connection: "close" });
        res.end(JSON.stringify({ message: "Request Entity Too Large" }));
        req.destroy();
        return;
      }
      const local = await opts.localRoute?.(req, body);
      if (local) return send(local);
      const event = toHttpApiEvent(req, body);
      send(await invokeLocally("api", 30_000, (context) => opts.handler(event, context)));
    } catch (err) {
      console.error(`[api] ${(err as Error).stack ?? err}`);
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ message: "Internal Server Error" }));
    }
  });
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host ?? "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : opts.port;
      resolve({
        server,
        url: `http://${opts.host ?? "127.0.0.1"}:${port}`,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
