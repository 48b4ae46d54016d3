import type pg from "pg";
import type { DatabaseHealth } from "./health.ts";
import { IDEMPOTENT_STATEMENT, type FinishedJobs } from "../graphile/internals.ts";
import { backoffMs, isConnectionError, isPermanentConnectError } from "./health.ts";

// graphile-worker 0.18 treats one failed "complete job" or "fail job" statement as fatal:
// its batcher gives up after the first error and shuts the worker pool down (and the
// runner then stops). A database restart or a terminated backend must not do that, so the
// pool a node owns is made patient:
// - connect() waits out an unreachable or full server, with back-off, until the node gives
//   up on the database or starts shutting down (nothing was sent yet, so waiting is safe);
// - graphile-worker's idempotent bookkeeping statements (complete, fail, return a job;
//   clear stale locks; the cron tick, guarded by known_crontabs) are re-sent on a fresh
//   connection when theirs breaks mid-flight. Job SQL is never retried: a job's session
//   holds its run lock, and its failure is graphile-worker's to retry;
// - graphile-worker's completion of a job that a run's finish_run already completed is
//   answered here, without a round trip (`finished`, see graphile/internals.ts);
// - a connection of the pool that fails (idle or in use) is reported to `onConnectionLost`:
//   a job get_job locked on it may never have reached a worker (lost-locks.ts).


const RETRY_CAP_MS = 2000;
/** What a skipped completion answers: graphile-worker reads nothing from it. */
const NOTHING_DONE = { command: "DELETE", rowCount: 0, oid: 0, fields: [], rows: [] } as unknown as pg.QueryResult;
const PATCHED = Symbol.for("systemprompt-scheduler.patient");

type QueryConfig = { text: string; name?: string; values?: unknown[] };
type ConnectCallback = (error: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void;

function isIdempotentStatement(config: unknown): config is QueryConfig {
  const name = (config as { name?: unknown } | null)?.name;
  return typeof config === "object" && config !== null && typeof name === "string" && IDEMPOTENT_STATEMENT.test(name);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Makes `pool` wait out database outages (see above). Only for a pool the node owns. */
export function makePoolPatient(pool: pg.Pool, health: DatabaseHealth, finished?: FinishedJobs, onConnectionLost?: () => void): void {
  const marked = pool as pg.Pool & { [PATCHED]?: boolean };
  if (marked[PATCHED]) return;
  marked[PATCHED] = true;
  const connectionLost = () => onConnectionLost?.();
  // An idle client's failure reaches the pool; one in use, only the client (below).
  pool.on("error", connectionLost);
  const connectOnce = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
  const queryOnce = pool.query.bind(pool) as (...args: unknown[]) => unknown;

  async function connectPatiently(): Promise<pg.PoolClient> {
    for (let attempt = 0; ; attempt++) {
      if (health.givenUp) throw health.givenUp;
      try {
        const client = await connectOnce();
        health.poolConnected();
        return retryingStatements(client);
      } catch (error) {
        if (pool.ending || health.stopping || isPermanentConnectError(error)) throw error;
        health.poolConnectFailed(error);
        await sleep(backoffMs(attempt, RETRY_CAP_MS));
      }
    }
  }

  /** Runs an idempotent statement, on fresh connections for as long as connections break. */
  async function resend(config: QueryConfig, firstError: unknown): Promise<pg.QueryResult> {
    let lastError = firstError;
    for (let attempt = 0; ; attempt++) {
      if (!isConnectionError(lastError) || health.stopping) throw lastError;
      await sleep(backoffMs(attempt, RETRY_CAP_MS));
      const client = await connectPatiently();
      try {
        const result = await originalQuery(client)(config);
        client.release();
        return result;
      } catch (error) {
        client.release(error instanceof Error ? error : true);
        lastError = error;
      }
    }
  }

  const originals = new WeakMap<pg.PoolClient, (config: QueryConfig) => Promise<pg.QueryResult>>();
  const originalQuery = (client: pg.PoolClient) => originals.get(client) ?? ((config: QueryConfig) => client.query(config));

  function retryingStatements(client: pg.PoolClient): pg.PoolClient {
    if (originals.has(client)) return client;
    // Once per client (it is handed out again and again): pg emits 'error' when its socket
    // fails or the server ends the session, whether a query was running or not.
    client.on("error", connectionLost);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    originals.set(client, (config) => query(config) as Promise<pg.QueryResult>);
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      if (args.length === 1 && isIdempotentStatement(args[0])) {
        const config = args[0];
        if (finished?.covers(config)) return Promise.resolve(NOTHING_DONE);
        return (query(config) as Promise<pg.QueryResult>).catch((error: unknown) => resend(config, error));
      }
      return query(...args);
    };
    return client;
  }

  (pool as unknown as { connect: (callback?: ConnectCallback) => unknown }).connect = (callback?: ConnectCallback) => {
    const connecting = connectPatiently();
    if (!callback) return connecting;
    connecting.then(
      (client) => callback(undefined, client, (release) => client.release(release as Error | boolean | undefined)),
      (error: Error) => callback(error, undefined, () => {}),
    );
    return undefined;
  };

  // graphile-worker's cron sends its tick through pool.query (promise form).
  (pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    if (args.length === 1 && isIdempotentStatement(args[0])) {
      const config = args[0];
      return (queryOnce(config) as Promise<pg.QueryResult>).catch((error: unknown) => resend(config, error));
    }
    return queryOnce(...args);
  };
}
