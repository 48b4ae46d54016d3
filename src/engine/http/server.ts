import crypto from "node:crypto";
import http from "node:http";
import { isConnectionError } from "../db/connection-errors.ts";
import { SchedulerError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ActionHandler } from "./actions.ts";
import { describeAddress, isLoopback, type HttpAddress } from "./address.ts";
import { findRoute } from "./api.ts";
import { dashboardAsset, SECURITY_HEADERS } from "./dashboard.ts";
import { checkActionRequest, readJsonBody } from "./guard.ts";
import { hostAllowed, hostPolicy } from "./host-check.ts";
import type { Readiness } from "./readiness.ts";
import { HttpProblem, JsonText, type ApiHandler } from "./types.ts";

// Every node's HTTP endpoint (SCHEDULER_HTTP_ADDR), on node:http: /healthz, /readyz,
// /metrics, JSON under /api/, and the dashboard at /. Everything is GET, except the
// dashboard's actions (POST /api/actions/*), which guard.ts lets through only with the token.
// Before any of that: the Host header must name this endpoint (host-check.ts), the target
// must parse, and at most `maxInFlight` requests are served at once (/healthz aside).

/** Requests served at once; one more is answered 429 (the endpoint is unauthenticated and polled). */
export const MAX_IN_FLIGHT = 8;

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

export interface HttpServerOptions {
  /** SCHEDULER_HTTP_ALLOWED_HOSTS: names the endpoint is reached by besides this machine's addresses. */
  allowedHosts?: readonly string[];
  maxInFlight?: number;
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

const json = (response: http.ServerResponse, status: number, value: unknown) =>
  send(response, status, "application/json; charset=utf-8", `${value instanceof JsonText ? value.text : JSON.stringify(value)}\n`);
const text = (response: http.ServerResponse, status: number, body: string) => send(response, status, "text/plain; charset=utf-8", `${body}\n`);
const ENDPOINTS = "try /, /healthz, /readyz, /metrics, /api/schedules";

/** A failure that is the database's (away, or slower than the HTTP pool's statement timeout), not a bug. */
function databaseUnavailable(error: unknown): string | null {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "57014") return "the database did not answer in time";
  if (code === "25006") return "the database refuses writes (a failover?)";
  return isConnectionError(error) ? "the database is not reachable" : null;
}

/**
 * A refusal as its JSON; the database away as 503; anything else as a bare 500 with an id,
 * its details logged once under that id (an answer never carries an error's text).
 */
function answerFailure(error: unknown, request: http.IncomingMessage, response: http.ServerResponse, logger: Logger): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  if (error instanceof HttpProblem) {
    if (error.status === 401) response.setHeader("www-authenticate", 'Bearer realm="systemprompt-scheduler"');
    return json(response, error.status, { error: error.message, ...(error.hint ? { hint: error.hint } : {}) });
  }
  const unavailable = databaseUnavailable(error);
  if (unavailable) {
    response.setHeader("retry-after", "5");
    return json(response, 503, { error: unavailable, hint: "GET /readyz says what the node sees; try again shortly" });
  }
  const requestId = crypto.randomBytes(6).toString("hex");
  logger.error({ err: error, requestId, method: request.method, url: request.url?.slice(0, 300) }, `an HTTP request failed (request ${requestId})`);
  json(response, 500, { error: "internal error", request_id: requestId });
}

async function act(routes: HttpRoutes, name: string, request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
  if (request.method !== "POST") {
    response.setHeader("allow", "POST");
    return json(response, 405, { error: `${request.method} is not allowed here: actions are POST` });
  }
  const action = routes.actions && Object.hasOwn(routes.actions, name) ? routes.actions[name] : undefined;
  if (!action) return json(response, 404, { error: `no action '${name}'`, actions: Object.keys(routes.actions ?? {}) });
  checkActionRequest(request, routes.token ?? null);
  const body = await readJsonBody(request);
  return json(response, 200, await action(body, request.socket.remoteAddress ?? "unknown address"));
}

async function handle(routes: HttpRoutes, target: URL, request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
  const { pathname, searchParams } = target;
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
export async function startHttpServer(address: HttpAddress, routes: HttpRoutes, logger: Logger, options: HttpServerOptions = {}): Promise<HttpEndpoint> {
  const hosts = hostPolicy(address, options.allowedHosts ?? []);
  const maxInFlight = options.maxInFlight ?? MAX_IN_FLIGHT;
  let inFlight = 0;
  const server = http.createServer((request, response) => {
    const host = request.headers.host;
    if (!hostAllowed(hosts, host, request.socket.localAddress)) {
      return json(response, 421, {
        error: `misdirected request: Host '${String(host).slice(0, 100)}' is not a name of this endpoint`,
        hint: "reach it by this machine's address or localhost, or list the name in SCHEDULER_HTTP_ALLOWED_HOSTS",
      });
    }
    let target: URL;
    try {
      target = new URL(request.url ?? "/", "http://node");
    } catch {
      return json(response, 400, { error: "the request target is not a valid path", hint: ENDPOINTS });
    }
    // Liveness costs nothing and must answer even when the endpoint is busy.
    if (target.pathname !== "/healthz") {
      if (inFlight >= maxInFlight) {
        response.setHeader("retry-after", "1");
        return json(response, 429, { error: `too many requests: ${maxInFlight} are being served already`, hint: "try again in a second" });
      }
      inFlight += 1;
      response.once("close", () => (inFlight -= 1));
    }
    handle(routes, target, request, response).catch((error: unknown) => answerFailure(error, request, response, logger));
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
