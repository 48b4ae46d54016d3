import type pg from "pg";
import type { DatabaseHealth } from "./health.ts";
import type { Connector } from "../db/connector.ts";
import type { NodeSession } from "../db/node-session.ts";
import { isReadOnlyError } from "../db/server-role.ts";
import { IDEMPOTENT_STATEMENT, type FinishedJobs } from "../graphile/internals.ts";
import { backoffMs, isConnectionError, isPermanentConnectError } from "../db/connection-errors.ts";

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
//   a job get_job locked on it may never have reached a worker (lost-locks.ts);
// - a statement that finds its server read-only (25006: a standby, a demoted primary) starts a
//   read-only episode (db/connector.ts): connections made before it are discarded when handed
//   out or given back, never reused, and the bookkeeping statement is re-sent on a connection
//   to a server that takes writes;
// - graphile-worker's listener is lent the node's session (db/node-session.ts), so its LISTEN
//   costs no connection of its own and is checked by every heartbeat. graphile-worker emits
//   `pool:listen:connecting` right before it asks the pool for the listener's connection (with
//   a callback, in the same tick): the node calls lendNextConnect() then (cluster/node.ts).


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
export interface PatientPool {
  /** The next connect with a callback is graphile-worker's listener's: it gets the node's session. */
  lendNextConnect(): void;
}

export function makePoolPatient(
  pool: pg.Pool,
  health: DatabaseHealth,
  options: { finished?: FinishedJobs; onConnectionLost?(): void; connector?: Connector; session?(): NodeSession | undefined } = {},
): PatientPool {
  const { finished, onConnectionLost, connector, session } = options;
  const marked = pool as pg.Pool & { [PATCHED]?: PatientPool };
  if (marked[PATCHED]) return marked[PATCHED];
  let lendNext = false;
  const control: PatientPool = { lendNextConnect: () => (lendNext = true) };
  marked[PATCHED] = control;
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
        if (connector?.isStale(client)) {
          // Idle since before a read-only episode: on the old server, most likely.
          client.release(true);
          attempt = -1;
          continue;
        }
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
      if (!(isConnectionError(lastError) || isReadOnlyError(lastError)) || health.stopping) throw lastError;
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
    // pg-pool gives a client a new release() at each checkout: a connection of an earlier
    // read-only episode is discarded rather than given back.
    const release = client.release.bind(client);
    client.release = (err?: Error | boolean) => release(err ?? (connector?.isStale(client) ? true : undefined));
    if (originals.has(client)) return client;
    // Once per client (it is handed out again and again): pg emits 'error' when its socket
    // fails or the server ends the session, whether a query was running or not.
    client.on("error", connectionLost);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    originals.set(client, (config) => query(config) as Promise<pg.QueryResult>);
    const noteReadOnly = (error: unknown) => {
      if (isReadOnlyError(error)) connector?.readOnly(client, error);
    };
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      if (args.length === 1 && isIdempotentStatement(args[0])) {
        const config = args[0];
        if (finished?.covers(config)) return Promise.resolve(NOTHING_DONE);
        return (query(config) as Promise<pg.QueryResult>).catch((error: unknown) => {
          noteReadOnly(error);
          return resend(config, error);
        });
      }
      const result = query(...args);
      // pg's callback form returns nothing; a promise is watched for a read-only server
      if (result instanceof Promise) {
        result.catch(noteReadOnly);
      }
      return result;
    };
    return client;
  }

  (pool as unknown as { connect: (callback?: ConnectCallback) => unknown }).connect = (callback?: ConnectCallback) => {
    const lent = callback && lendNext ? session?.() : undefined;
    lendNext = false;
    if (callback && lent) {
      // Lent, not handed over: graphile-worker's release (after its UNLISTEN) gives nothing back.
      lent.client().then(
        (client) => callback(undefined, client as unknown as pg.PoolClient, () => {}),
        (error: Error) => callback(error, undefined, () => {}),
      );
      return undefined;
    }
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
  return control;
}
