import pg from "pg";
import type { Logger } from "../log.ts";
import { SchedulerError } from "../errors.ts";

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/** Something that runs a query: a pool, a client, or a job's own connection. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export function describeTarget(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    return `${url.hostname || "localhost"}:${url.port || "5432"}${url.pathname}`;
  } catch {
    return "(unparseable DATABASE_URL)";
  }
}

/**
 * A pool with error handlers on the pool and its idle clients: a connection
 * dropped by the server (restart, pg_terminate_backend) is logged and replaced
 * on next use instead of crashing the process.
 */
export function createPool(connectionString: string, options: { max?: number; logger?: Logger; applicationName?: string; types?: pg.CustomTypesConfig } = {}): Pool {
  const pool = new pg.Pool({
    connectionString,
    ...(options.types ? { types: options.types } : {}),
    max: options.max ?? 10,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? "systemprompt-scheduler",
  });
  pool.on("error", (error) => {
    options.logger?.warn(brief(error), "an idle database connection failed; it will be replaced");
  });
  pool.on("connect", (client) => {
    client.on("error", (error) => options.logger?.warn(brief(error), "a database connection failed"));
  });
  return pool;
}

/** The fields of a pg error a person needs; pino's err serializer would dump the whole client. */
export function brief(error: unknown): { error: string; code?: string } {
  const code = (error as { code?: string } | null)?.code;
  return { error: error instanceof Error ? error.message : String(error), ...(code ? { code } : {}) };
}

/** The connection string with its password replaced by ***, for logs. */
export function maskPassword(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    if (url.password) url.password = "***";
    return url.toString();
  } catch {
    return "(unparseable DATABASE_URL)";
  }
}

/** host:port of a connection string, as a person writes it. */
export function hostAndPort(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    return `${url.hostname || "localhost"}:${url.port || "5432"}`;
  } catch {
    return "(unparseable DATABASE_URL)";
  }
}

/**
 * Waits until the database answers, for at most `timeoutMs`, then fails with an error
 * naming host and port: an unreachable server must not hang a node. Each failed attempt
 * is logged, so a person sees what the node is waiting for.
 */
export async function waitForDatabase(connectionString: string, options: { timeoutMs?: number; logger?: Logger } = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 25_000);
  let lastError: unknown;
  for (let attempt = 1; Date.now() < deadline; attempt++) {
    const client = new pg.Client({ connectionString, connectionTimeoutMillis: Math.max(1000, Math.min(5000, deadline - Date.now())) });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.query("select 1");
      await client.end();
      return;
    } catch (error) {
      lastError = error;
      await client.end().catch(() => {});
      if (isPermanentConnectError(error)) break;
      options.logger?.warn({ ...brief(error), attempt }, `waiting for PostgreSQL at ${hostAndPort(connectionString)} (attempt ${attempt})`);
      await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 250 * 2 ** attempt)));
    }
  }
  const reason = lastError instanceof Error ? lastError.message : String(lastError);
  throw new SchedulerError("database_unreachable", `cannot connect to PostgreSQL at ${describeTarget(connectionString)}: ${reason}`, {
    hint: "check that the server runs and that DATABASE_URL names the right host, port, database and credentials",
    cause: lastError,
  });
}

function isPermanentConnectError(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  // bad password, unknown role or database, bad host name: retrying will not help
  return code === "28P01" || code === "28000" || code === "3D000" || code === "ENOTFOUND";
}
