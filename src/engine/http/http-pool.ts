import type { Connector } from "../db/connector.ts";
import { createPool, type Pool } from "../db/pool.ts";
import type { Logger } from "../log.ts";
import { numberTypes } from "../db/number-types.ts";

// The HTTP endpoint's own connections. Its readers are unauthenticated and polled (a
// dashboard left open, scrapers, probes), so they never take a connection a job needs: at
// most HTTP_POOL_SIZE, none while nobody asks, and every statement cut at
// HTTP_STATEMENT_TIMEOUT_MS. While the database is away a request waits at most
// HTTP_CONNECT_TIMEOUT_MS for a connection and then gets 503 (server.ts), instead of queueing
// behind the node's own patient pool.

export const HTTP_POOL_SIZE = 2;
export const HTTP_STATEMENT_TIMEOUT_MS = 2000;
export const HTTP_CONNECT_TIMEOUT_MS = 2000;
/** Unused connections close after this long: an idle node holds none for its endpoint. */
export const HTTP_POOL_IDLE_MS = 1000;

export function createHttpPool(connector: Connector, options: { logger: Logger; applicationName: string }): Pool {
  return createPool(connector, {
    max: HTTP_POOL_SIZE,
    idleTimeoutMillis: HTTP_POOL_IDLE_MS,
    connectionTimeoutMillis: HTTP_CONNECT_TIMEOUT_MS,
    // The server's timeout cancels the statement; ours gives up on an answer that a cut network never delivers.
    queryTimeoutMillis: HTTP_STATEMENT_TIMEOUT_MS + 1000,
    // Short statements over small results: JIT compilation would cost more than it saves.
    settings: { statement_timeout: String(HTTP_STATEMENT_TIMEOUT_MS), jit: "off" },
    // Counts and ids as JSON numbers, as in the CLI's --json.
    types: numberTypes,
    logger: options.logger,
    applicationName: options.applicationName,
  });
}
