import type { EventEmitter } from "node:events";
import { collectDefaultMetrics, Registry } from "prom-client";
import type { Queryable } from "../db/pool.ts";
import type { Logger } from "../log.ts";
import type { SchedulerPack } from "../pack.ts";
import { clusterMetrics } from "./cluster-metrics.ts";
import { nodeMetrics, type NodeMetrics } from "./node-metrics.ts";

// A node's /metrics: its own registries (several nodes may share a process, e.g. in tests),
// Node.js process metrics, node-local run counters, and cluster-wide gauges from the
// database (the engine's and the packs'), refreshed at most every `cacheMs` so that many
// scrapers, or a fast scrape interval, cost the database one query per period. The cluster
// gauges (thousands of series with a large crontab) are rendered once per refresh, not per
// scrape; the node's own metrics, which change with every run, at each scrape.

export const DEFAULT_METRICS_CACHE_MS = 5000;
/** Under Prometheus's default scrape timeout (10 s), with room for the rest of the scrape. */
export const METRICS_REFRESH_WAIT_MS = 2000;

export interface SchedulerMetrics {
  registry: Registry;
  node: NodeMetrics;
  /** The Prometheus text exposition, with cluster gauges at most `cacheMs` old. */
  render(): Promise<string>;
  contentType: string;
  stop(): void;
}

export function schedulerMetrics(options: {
  db: Queryable;
  events: EventEmitter;
  packs: readonly SchedulerPack[];
  /** This node's id: the missed ticks its cron recorded count in its scheduler_job_runs_total. */
  nodeId: string;
  deadAfterMs: number;
  logger: Logger;
  cacheMs?: number;
  /** How long a scrape waits for the database before it serves the last values. */
  refreshWaitMs?: number;
}): SchedulerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const node = nodeMetrics(registry, options.events, options.db);
  // The packs' cluster gauges, in a registry rendered once per refresh like the engine's.
  const cluster = new Registry();
  let clusterText = "";
  const cacheMs = options.cacheMs ?? DEFAULT_METRICS_CACHE_MS;
  const engine = clusterMetrics(options.db, { nodeId: options.nodeId, deadAfterMs: options.deadAfterMs, cacheMs, missedHere: node.missedRecorded, scheduled: node.scheduled });
  const refreshers = [() => engine.refresh()];
  for (const pack of options.packs) {
    const refresh = pack.metrics?.({ registry: cluster, db: options.db });
    if (refresh) refreshers.push(refresh);
  }
  const refreshWaitMs = options.refreshWaitMs ?? METRICS_REFRESH_WAIT_MS;
  let refreshedAt = -Infinity;
  let refreshing: Promise<void> | null = null;
  const refresh = () => {
    if (Date.now() - refreshedAt < cacheMs) return Promise.resolve();
    // Scrapes arriving together share one refresh.
    refreshing ??= Promise.all(refreshers.map((fn) => fn()))
      .then(async () => {
        clusterText = `${engine.text()}\n${await cluster.metrics()}`;
        refreshedAt = Date.now();
      })
      .finally(() => (refreshing = null));
    return refreshing;
  };
  return {
    registry,
    node,
    contentType: registry.contentType,
    async render() {
      // Without the database the gauges keep their last values; the scrape still answers
      // (process metrics and counters), and /readyz says what is wrong. The node's pool waits
      // out an outage, so a scrape waits for the refresh only so long (it goes on, shared).
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, refreshWaitMs)));
      await Promise.race([
        refresh().catch((error: unknown) => options.logger.warn({ err: error }, "reading cluster metrics from the database failed; serving the last values")),
        waited.then(() => options.logger.debug(`cluster metrics not read within ${refreshWaitMs} ms (database away?); serving the last values`)),
      ]);
      clearTimeout(timer);
      return `${await registry.metrics()}\n${clusterText}`;
    },
    stop() {
      node.stop();
      registry.clear();
      cluster.clear();
    },
  };
}
