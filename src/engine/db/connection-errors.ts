// Which failures are the connection's, not the statement's: waiting (and reconnecting) may fix
// them. Shared by everything that reconnects: the node's pool and session, the session check.

const CONNECTION_ERROR_CODES = new Set([
  "57P01", // admin_shutdown: pg_terminate_backend, server shutting down
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: server starting up or shutting down
  "53300", // too_many_connections
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ENOTFOUND",
]);

const CONNECTION_ERROR_MESSAGES = [
  "Connection terminated",
  "connection timeout",
  "timeout exceeded when trying to connect",
  "Client has encountered a connection error",
  "Client was closed and is not queryable",
  "terminating connection",
  "the database system is",
  "Query read timeout",
];

/** True when a query or connect failed because of the connection, not because of the SQL. */
export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && (CONNECTION_ERROR_CODES.has(code) || code.startsWith("08"))) return true;
  const message = error instanceof Error ? error.message : String(error);
  return CONNECTION_ERROR_MESSAGES.some((fragment) => message.includes(fragment));
}

/** Errors that waiting will not fix: bad credentials, missing database, the pool was closed. */
export function isPermanentConnectError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "28P01" || code === "28000" || code === "3D000") return true;
  const message = error instanceof Error ? error.message : String(error);
  return message.includes("Cannot use a pool after calling end");
}

/** Exponential back-off with jitter: 100 ms, 200 ms, 400 ms ... capped. */
export function backoffMs(attempt: number, capMs: number): number {
  const base = Math.min(capMs, 100 * 2 ** Math.min(attempt, 16));
  return Math.round(base * (0.5 + Math.random() / 2));
}
