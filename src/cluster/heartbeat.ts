import pg from "pg";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { backoffMs, type DatabaseHealth } from "./health.ts";
import { heartbeatNode, registerNode, type NodeRegistration } from "./nodes.ts";

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

  async function connect(): Promise<pg.Client> {
    const fresh = new pg.Client({ ...options.clientConfig, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
    // Errors on an idle connection (terminated backend) surface at the next beat.
    fresh.on("error", () => {});
    try {
      await fresh.connect();
    } catch (error) {
      fresh.end().catch(() => {});
      throw error;
    }
    return fresh;
  }

  async function beat(): Promise<void> {
    try {
      client ??= await connect();
      const verdict = await heartbeatNode(client, node.nodeId);
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
    } catch (error) {
      failures += 1;
      dropClient();
      health.down(error);
      if (failures > 1) logger.debug({ error: errorMessage(error), failures }, "heartbeat failed again");
    }
  }

  const schedule = () => {
    if (stopped || health.givenUp) return;
    const delay = failures === 0 ? intervalMs : Math.min(intervalMs, backoffMs(failures - 1, intervalMs));
    timer = setTimeout(() => {
      timer = null;
      inFlight = beat().finally(schedule);
    }, delay);
    timer.unref();
  };
  schedule();

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
