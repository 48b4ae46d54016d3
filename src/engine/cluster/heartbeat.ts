import type pg from "pg";
import type { Connector } from "../db/connector.ts";
import type { Queryable } from "../db/pool.ts";
import { startNodeSession, type NodeSession } from "../db/node-session.ts";
import { isReadOnlyError } from "../db/server-role.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { readClocks, type DatabaseClock } from "./clock.ts";
import type { DatabaseHealth } from "./health.ts";
import { heartbeatNode, primarySince, registerNode, takeLivenessLock, type NodeRegistration } from "./nodes.ts";

// The heartbeat runs on the node's own session (db/node-session.ts), never the pool: jobs can
// hold every pooled connection, and a server that refuses new connections must not silence a
// live node. It is a chain of timeouts (a late beat never piles up) and the judge of whether
// the database is there at all (DatabaseHealth). A beat is also the session's liveness check:
// a statement every interval, with a timeout, so a silently dead socket is noticed within
// seconds, not after the kernel's retransmission timeout (about 15 minutes). And a beat is a
// measurement of this node's clock against the database's (cluster/clock.ts), recorded with
// the next beat.

/** The node's session's time-out for connecting and for statements other than the beat. */
const SESSION_TIMEOUT_MS = 10_000;

export interface Heartbeat {
  /** The node's session: liveness lock, heartbeat, every LISTEN of the node. */
  session: NodeSession;
  stop(): Promise<void>;
}

export function startHeartbeat(options: {
  connector: Connector;
  node: NodeRegistration;
  intervalMs: number;
  health: DatabaseHealth;
  logger: Logger;
  /** Measured by every beat; its skew is recorded in scheduler.nodes. */
  clock: DatabaseClock;
  /** Called after a beat that found other nodes quiet (missed a beat): time for a rescue pass. */
  onQuietNodes?(count: number): void;
  /** The session reconnected to a server that became the primary since the last one (a failover). */
  onNewPrimary?(): void;
}): Heartbeat {
  const { connector, node, intervalMs, health, logger, clock } = options;
  // A beat that hangs (server frozen, network black hole) counts as a failure well before
  // other nodes would declare this one dead.
  const timeoutMs = Math.max(1000, intervalMs * 2);
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let failures = 0;
  let inFlight: Promise<void> = Promise.resolve();
  let lastPrimarySince: number | null = null;

  /**
   * The session holds the node's liveness lock for as long as it lives: when the process
   * dies, PostgreSQL ends the session and frees the lock, and rescuers know the node is gone
   * (sql/009). A session that breaks is replaced at once, lock and all, so a live node's lock
   * is never free for longer than a reconnect.
   */
  const session = startNodeSession({
    connector,
    applicationName: node.applicationName,
    // Connecting, taking the lock and listening again after a restart of the server may take
    // longer than a beat may: the beat has its own, shorter time-out (below).
    timeoutMs: Math.max(SESSION_TIMEOUT_MS, timeoutMs),
    // Reconnect at least every second: after a failover the new primary is found at once.
    retryCapMs: Math.min(intervalMs, 1000),
    logger,
    async prepare(client: pg.Client) {
      await takeLivenessLock(client, node.nodeId, node.applicationName, Math.max(SESSION_TIMEOUT_MS, timeoutMs));
      // A promotion starts a new timeline, and with it a new "primary since" (sql/024).
      const since = await primarySince(client);
      if (lastPrimarySince !== null && since !== lastPrimarySince) options.onNewPrimary?.();
      lastPrimarySince = since;
    },
    onLost(error) {
      if (stopped) return;
      health.down(error);
    },
    onConnectFailed(error) {
      if (!stopped) health.down(error);
    },
    onConnected() {
      beatNow();
    },
  });

  async function beat(): Promise<void> {
    const client = session.current();
    if (!client) return; // reconnecting: the session reports to health, and beats once it is back
    // A beat that takes longer than this says nothing good about the session.
    const timed: Queryable = { query: (text, values) => client.query({ text, values, query_timeout: timeoutMs } as pg.QueryConfig) };
    try {
      const sent = readClocks();
      const verdict = await heartbeatNode(timed, node.nodeId, intervalMs, clock.skewMs());
      if (verdict !== "unknown") clock.record(sent, verdict.databaseClockMs, readClocks());
      if (verdict === "unknown") {
        logger.warn("this node's registration was missing (pruned, or lost in a failover?); registering again");
        await registerNode(timed, node);
      } else if (verdict.deadAt) {
        logger.error(
          { declaredDeadAt: verdict.deadAt, declaredDeadBy: verdict.deadBy },
          "this node had been declared dead by another node (its heartbeats stopped for too long): the jobs it held were released to other nodes and its database sessions ended; it rejoins now",
        );
      }
      failures = 0;
      health.up();
      if (verdict !== "unknown" && verdict.quietNodes > 0) options.onQuietNodes?.(verdict.quietNodes);
    } catch (error) {
      failures += 1;
      if (isReadOnlyError(error)) connector.readOnly(client, error);
      health.down(error);
      // A beat that failed or hung says nothing good about the socket: a fresh session.
      session.reconnect(error);
      if (failures > 1) logger.debug({ error: errorMessage(error), failures }, "heartbeat failed again");
    }
  }

  const schedule = (delay = intervalMs) => {
    if (stopped || health.givenUp) return;
    timer = setTimeout(() => {
      timer = null;
      inFlight = beat().finally(() => schedule());
    }, delay);
    timer.unref();
  };
  /** Beats as soon as the beat in flight (if any) is done, instead of at the next interval. */
  function beatNow(): void {
    if (stopped || !timer) return; // a beat is in flight: it reschedules itself
    clearTimeout(timer);
    timer = null;
    schedule(0);
  }
  schedule();

  return {
    session,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await inFlight.catch(() => {});
      await session.close();
    },
  };
}
