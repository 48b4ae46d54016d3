import pg from "pg";
import type { Logger } from "../log.ts";
import { SchedulerError } from "../errors.ts";
import { maskConnectionString } from "./connection-string.ts";
import { createConnector, wantedWord, type Connector } from "./connector.ts";
import { isPermanentConnectError } from "./connection-errors.ts";
import { isReadOnlyError } from "./server-role.ts";

const TOO_MANY_CONNECTIONS = "53300";

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/** Something that runs a query: a pool, a client, or a job's own connection. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** The connector a pool of ours gets its clients from (createPool). */
const CONNECTOR = Symbol.for("systemprompt-scheduler.connector");

export function connectorOf(pool: pg.Pool): Connector | null {
  return (pool as pg.Pool & { [CONNECTOR]?: Connector })[CONNECTOR] ?? null;
}

/**
 * A pool with error handlers on the pool and its idle clients: a connection
 * dropped by the server (restart, pg_terminate_backend) is logged and replaced
 * on next use instead of crashing the process. Its clients come from `target`'s connector
 * (several hosts, target_session_attrs; db/connector.ts); a connection string gets one of
 * its own that takes the string's target_session_attrs.
 */
export interface PoolOptions {
  max?: number;
  logger?: Logger;
  applicationName?: string;
  types?: pg.CustomTypesConfig;
  idleTimeoutMillis?: number;
  /** How long a caller waits for a connection (a free one, or a new one being made); default 10 s. */
  connectionTimeoutMillis?: number;
  /** pg's query_timeout: a statement's answer is given up on after this long, on our side. */
  queryTimeoutMillis?: number;
  /**
   * Session settings made on each new connection before its first statement (SET, not startup
   * parameters, which poolers such as PgBouncer refuse), e.g. { statement_timeout: "2000" }.
   */
  settings?: Record<string, string>;
}

export function createPool(target: string | Connector, options: PoolOptions = {}): Pool {
  const connector = typeof target === "string" ? createConnector(target, { logger: options.logger }) : target;
  const pool = new pg.Pool({
    Client: connector.Client,
    // For those who read it (the service reconciler's protected ports); clients connect through `Client`.
    connectionString: connector.connectionString,
    ...(options.types ? { types: options.types } : {}),
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 10_000,
    ...(options.queryTimeoutMillis ? { query_timeout: options.queryTimeoutMillis } : {}),
    idleTimeoutMillis: options.idleTimeoutMillis ?? 30_000,
    application_name: options.applicationName ?? "systemprompt-scheduler",
  });
  const settings = Object.entries(options.settings ?? {});
  (pool as pg.Pool & { [CONNECTOR]?: Connector })[CONNECTOR] = connector;
  pool.on("error", (error, client) => {
    // A connection of a read-only episode, discarded on purpose: nothing to report.
    if (client && connector.isStale(client)) return;
    options.logger?.warn(brief(error), "an idle database connection failed; it will be replaced");
  });
  pool.on("connect", (client) => {
    client.on("error", (error) => {
      if (!connector.isStale(client)) options.logger?.warn(brief(error), "a database connection failed");
    });
    // A client runs its statements in order: this one goes before whatever the pool was asked.
    if (settings.length > 0) {
      const names = settings.map(([name]) => name);
      const values = settings.map(([, value]) => value);
      client.query("select set_config(name, value, false) from unnest($1::text[], $2::text[]) as s(name, value)", [names, values]).catch((error: unknown) => options.logger?.warn(brief(error), "setting up a database connection failed"));
    }
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
  return maskConnectionString(connectionString);
}

/**
 * Waits until a suitable server answers, then fails with an error naming the hosts: an
 * unreachable server must not hang a node. An unreachable database is waited for `timeoutMs`;
 * one that answers but does not suit (a standby where a node needs a primary) for
 * `primaryTimeoutMs`, as during a failover (and so is a server with no free connection). A
 * person sees what the node is waiting for: the
 * first attempt, a change of reason, and every tenth attempt are logged.
 */
export async function waitForDatabase(
  connector: Connector,
  options: { timeoutMs?: number; primaryTimeoutMs?: number; logger?: Logger } = {},
): Promise<void> {
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? 25_000;
  const primaryTimeoutMs = options.primaryTimeoutMs ?? timeoutMs;
  let lastError: unknown;
  let lastReason = "";
  let waitingForRole = false;
  let waitingLong = false;
  const deadline = () => started + (waitingLong ? primaryTimeoutMs : timeoutMs);
  for (let attempt = 1; ; attempt++) {
    try {
      const client = await connector.connect({ connectionTimeoutMillis: Math.max(1000, Math.min(5000, deadline() - Date.now())) });
      await client.end();
      return;
    } catch (error) {
      lastError = error;
      if (cannotSucceed(error)) break;
      waitingForRole = isReadOnlyError(error);
      // A full server (too many clients) is waited for as long as a failover: a fleet starting.
      waitingLong = waitingForRole || (error as { code?: string } | null)?.code === TOO_MANY_CONNECTIONS;
      if (Date.now() >= deadline()) break;
      const reason = error instanceof Error ? error.message : String(error);
      if (attempt === 1 || reason !== lastReason || attempt % 10 === 0) {
        options.logger?.warn(
          { ...brief(error), attempt },
          waitingForRole ? `waiting for a ${wantedWord(connector.requirement)}: ${reason} (attempt ${attempt})` : `waiting for PostgreSQL at ${connector.target} (attempt ${attempt})`,
        );
      }
      lastReason = reason;
      await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 250 * 2 ** attempt, Math.max(0, deadline() - Date.now()))));
    }
  }
  const reason = lastError instanceof Error ? lastError.message : String(lastError);
  if (waitingForRole) {
    const waited = Math.round((Date.now() - started) / 1000);
    throw new SchedulerError("no_primary", `no ${wantedWord(connector.requirement)} at ${connector.target}${waited > 0 ? ` after ${waited} s` : ""}: ${reason}`, {
      hint: "promote a standby (or wait for your HA manager to), or list the primary's host in DATABASE_URL; raise SCHEDULER_DB_GIVE_UP_MS to wait longer",
      cause: lastError,
    });
  }
  throw new SchedulerError("database_unreachable", `cannot connect to PostgreSQL at ${connector.target}: ${reason}`, {
    hint: "check that the server runs and that DATABASE_URL names the right host, port, database and credentials",
    cause: lastError,
  });
}

/** Bad credentials, an unknown role or database, or a host name that does not resolve: retrying will not help. */
function cannotSucceed(error: unknown): boolean {
  return isPermanentConnectError(error) || (error as { code?: string } | null)?.code === "ENOTFOUND";
}
