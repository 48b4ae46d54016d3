import http from "node:http";
import { SchedulerError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ActionHandler } from "./actions.ts";
import { describeAddress, isLoopback, type HttpAddress } from "./address.ts";
import { findRoute } from "./api.ts";
import { dashboardAsset, SECURITY_HEADERS } from "./dashboard.ts";
import { checkActionRequest, readJsonBody } from "./guard.ts";
import type { Readiness } from "./readiness.ts";
import { HttpProblem, type ApiHandler } from "./types.ts";

// Every node's HTTP endpoint (SCHEDULER_HTTP_ADDR), on node:http: /healthz, /readyz,
// /metrics, JSON under /api/, and the dashboard at /. Everything is GET, except the
// dashboard's actions (POST /api/actions/*), which guard.ts lets through only with the token.

export interface HttpRoutes {
  readiness(): Promise<Readiness>;
  metrics(): Promise<{ contentType: string; body: string }>;
  /** JSON endpoints under /api/, by path after /api/ (e.g. `schedules`, `runs/:id`). */
  api: Record<string, ApiHandler>;
  /** POST /api/actions/<name>; none: the endpoint is read-only. */
  actions?: Record<string, ActionHandler>;
  /** SCHEDULER_HTTP_TOKEN; null: every action is refused (403). */
  token?: string | null;
}

export interface HttpEndpoint {
  /** The address it listens on (the port the OS picked when given 0). */
  address: HttpAddress;
  close(): Promise<void>;
}

function send(response: http.ServerResponse, status: number, contentType: string, body: string | Buffer): void {
  response.writeHead(status, { ...SECURITY_HEADERS, "content-type": contentType, "cache-control": "no-store" });
  response.end(body);
}

const json = (response: http.ServerResponse, status: number, value: unknown) => send(response, status, "application/json; charset=utf-8", `${JSON.stringify(value)}\n`);
const text = (response: http.ServerResponse, status: number, body: string) => send(response, status, "text/plain; charset=utf-8", `${body}\n`);
const ENDPOINTS = "try /, /healthz, /readyz, /metrics, /api/schedules";

async function act(routes: HttpRoutes, name: string, request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
  if (request.method !== "POST") {
    response.setHeader("allow", "POST");
    return json(response, 405, { error: `${request.method} is not allowed here: actions are POST` });
  }
  const action = routes.actions?.[name];
  if (!action) return json(response, 404, { error: `no action '${name}'`, actions: Object.keys(routes.actions ?? {}) });
  checkActionRequest(request, routes.token ?? null);
  const body = await readJsonBody(request);
  return json(response, 200, await action(body, request.socket.remoteAddress ?? "unknown address"));
}

async function handle(routes: HttpRoutes, request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
  const { pathname, searchParams } = new URL(request.url ?? "/", "http://node");
  if (pathname.startsWith("/api/actions/")) return act(routes, pathname.slice("/api/actions/".length), request, response);
  if (request.method !== "GET" && request.method !== "HEAD") {
    response.setHeader("allow", "GET, HEAD");
    return text(response, 405, `${request.method} is not allowed here: this endpoint is read-only (actions are POST /api/actions/*)`);
  }
  if (pathname === "/healthz") return text(response, 200, "ok");
  if (pathname === "/readyz") {
    const readiness = await routes.readiness();
    if (readiness.ready) return json(response, 200, { ready: true });
    return json(response, 503, { ready: false, problems: readiness.problems });
  }
  if (pathname === "/metrics") {
    const { contentType, body } = await routes.metrics();
    return send(response, 200, contentType, body);
  }
  if (pathname.startsWith("/api/")) {
    const route = findRoute(routes.api, pathname.slice("/api/".length));
    if (route) return json(response, 200, await route.handler({ query: searchParams, id: route.id }));
    return json(response, 404, { error: `no API at ${pathname}`, endpoints: Object.keys(routes.api).map((name) => `/api/${name}`) });
  }
  const asset = dashboardAsset(pathname);
  if (asset) return send(response, 200, asset.contentType, asset.body);
  return text(response, 404, `not found: ${pathname} (${ENDPOINTS})`);
}

/**
 * Listens on `address`. A port in use (or an address this machine does not have) is refused
 * with an error naming the address and SCHEDULER_HTTP_ADDR (exit 2).
 */
export async function startHttpServer(address: HttpAddress, routes: HttpRoutes, logger: Logger): Promise<HttpEndpoint> {
  const server = http.createServer((request, response) => {
    handle(routes, request, response).catch((error: unknown) => {
      if (error instanceof HttpProblem && !response.headersSent) {
        if (error.status === 401) response.setHeader("www-authenticate", 'Bearer realm="systemprompt-scheduler"');
        return json(response, error.status, { error: error.message, ...(error.hint ? { hint: error.hint } : {}) });
      }
      logger.warn({ err: error, url: request.url }, "an HTTP request failed");
      if (!response.headersSent) text(response, 500, `internal error: ${error instanceof Error ? error.message : String(error)}`);
      else response.destroy();
    });
  });
  // Scrapers and probes open short connections; none may hold stop() up.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      const where = describeAddress(address);
      const reason =
        error.code === "EADDRINUSE" ? `${where} is already in use (another node or program listens there)`
        : error.code === "EADDRNOTAVAIL" ? `${where} is not an address of this machine`
        : error.code === "EACCES" ? `no permission to listen on ${where}`
        : `${where}: ${error.message}`;
      reject(new SchedulerError("http_listen_failed", `cannot serve HTTP: ${reason}`, {
        hint: "set SCHEDULER_HTTP_ADDR to a free host:port (each node on a machine needs its own), or SCHEDULER_HTTP_ADDR=off",
        exitCode: 2,
        cause: error,
      }));
    });
    server.listen(address.port, address.host, () => resolve());
  });
  const bound = server.address();
  const actual = typeof bound === "object" && bound ? { host: address.host, port: bound.port } : address;
  if (!isLoopback(address.host)) {
    if (routes.token) logger.warn({ address: describeAddress(actual) }, "the HTTP endpoint listens beyond this machine: anyone who reaches it reads the dashboard, /metrics and /api/ (actions need SCHEDULER_HTTP_TOKEN); restrict access with a firewall, and use TLS in front of it so the token does not cross the network in clear");
    else logger.warn({ address: describeAddress(actual) }, "the HTTP endpoint listens beyond this machine without SCHEDULER_HTTP_TOKEN: anyone who reaches it reads the dashboard, /metrics and /api/ (actions stay off); bind it to 127.0.0.1 or restrict access with a firewall");
  }
  logger.info({ address: describeAddress(actual), actions: Boolean(routes.token) }, `serving the dashboard, /healthz, /readyz, /metrics and /api/ (${routes.token ? "actions on: SCHEDULER_HTTP_TOKEN is set" : "read-only: no SCHEDULER_HTTP_TOKEN"})`);
  return {
    address: actual,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
