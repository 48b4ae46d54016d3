import { Gauge, type Registry } from "prom-client";
import type { Queryable } from "../engine/db/pool.ts";
import { readSql } from "../engine/db/sql-file.ts";

// The platform's gauges on every node's /metrics (SchedulerPack.metrics): services by host
// and observed status, and active bans. Cluster-wide like the engine's: aggregate with max.

const GAUGES = readSql(import.meta.url, "metrics.sql");

export function platformMetrics({ registry, db }: { registry: Registry; db: Queryable }): () => Promise<void> {
  const registers = [registry];
  const services = new Gauge({ name: "scheduler_services", help: "Services by host and observed status (running, starting, stopped, crashed, orphaned, failed) [cluster-wide: aggregate with max]", labelNames: ["host", "status"] as const, registers });
  const bans = new Gauge({ name: "scheduler_bans_active", help: "Banned IP addresses whose ban is in force (permanent or not expired) [cluster-wide: aggregate with max]", registers });
  return async () => {
    const { rows } = await db.query<{ services: { host: string; status: string; count: number }[]; bans_active: number }>(GAUGES);
    // Reset first: a host whose services are all gone must disappear from the output.
    services.reset();
    for (const row of rows[0]!.services) services.set({ host: row.host, status: row.status }, row.count);
    bans.set(rows[0]!.bans_active);
  };
}
