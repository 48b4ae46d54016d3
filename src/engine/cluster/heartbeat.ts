import pg from "pg";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { backoffMs, type DatabaseHealth } from "./health.ts";
import { heartbeatNode, registerNode, takeLivenessLock, type NodeRegistration } from "./nodes.ts";

// The heartbeat runs on a connection of its own, never the pool: jobs can hold every pooled
// connection, and a server that refuses new connections must not silence a live node. It is
// a chain of timeouts (a late beat never piles up), reconnects with back-off, and is the
// judge of whether the database is there at all (DatabaseHealth).

export interface Heartbeat {
  stop(): Promise<void>;
}

export function startHeartbeat(options: {
  clientConfig: pg.ClientConfig;
  node: NodeRegistration;
  intervalMs: number;
  health: DatabaseHealth;
  logger: Logger;
  /** Called after a beat that found other nodes quiet (missed a beat): time for a rescue pass. */
  onQuietNodes?(count: number): void;
}): Heartbeat {
  const { node, intervalMs, health, logger } = options;
  // A beat that hangs (server frozen, network black hole) counts as a failure well before
  // other nodes would declare this one dead.
  const timeoutMs = Math.max(1000, intervalMs * 2);
  let client: pg.Client | null = null;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let failures = 0;
  let inFlight: Promise<void> = Promise.resolve();

  const dropClient = () => {
    const old = client;
    client = null;
    old?.end().catch(() => {});
  };

  /**
   * The heartbeat's connection holds the node's liveness lock for as long as it lives: when
   * the process dies, PostgreSQL ends the session and frees the lock, and rescuers know the
   * node is gone (sql/009). A connection that breaks is replaced at once, lock and all, so a
   * live node's lock is never free for longer than a reconnect.
   */
  async function connect(): Promise<pg.Client> {
    const fresh = new pg.Client({ ...options.clientConfig, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
    const broken = (error?: unknown) => {
      if (client !== fresh || stopped) return;
      dropClient();
      health.down(error ?? new Error("the heartbeat connection was closed"));
      beatNow();
    };
    fresh.on("error", broken);
    fresh.on("end", broken);
    try {
      await fresh.connect();
      await takeLivenessLock(fresh, node.nodeId);
    } catch (error) {
      fresh.end().catch(() => {});
      throw error;
    }
    return fresh;
  }

  async function beat(): Promise<void> {
    try {
      client ??= await connect();
      const verdict = await heartbeatNode(client, node.nodeId, intervalMs);
      if (verdict === "unknown") {
        logger.warn("this node's registration was missing (pruned?); registering again");
        await registerNode(client, node);
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
      dropClient();
      health.down(error);
      if (failures > 1) logger.debug({ error: errorMessage(error), failures }, "heartbeat failed again");
    }
  }

  const schedule = (delay = failures === 0 ? intervalMs : Math.min(intervalMs, backoffMs(failures - 1, intervalMs))) => {
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
  // The first beat at once: connect and take the liveness lock.
  schedule(0);

  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await inFlight.catch(() => {});
      const old = client;
      client = null;
      await old?.end().catch(() => {});
    },
  };
}
