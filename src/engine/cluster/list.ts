import type { Queryable } from "../db/pool.ts";
import { readSql } from "../db/sql-file.ts";

const LIST_NODES = readSql(import.meta.url, "list_nodes.sql");

export interface NodeRow {
  node_id: string;
  host: string;
  pid: number;
  version: string | null;
  started_at: Date;
  last_heartbeat_at: Date;
  silent_ms: string;
  /** alive; dead (silent past the threshold, or declared dead and rescued); stopped (clean shutdown). */
  state: "alive" | "dead" | "stopped";
  rescued_at: Date | null;
  rescued_by: string | null;
  stopped_at: Date | null;
  worker_pool_id: string | null;
  /** The node's clock minus the database's, as its heartbeat measured it (ms; positive: ahead); null before its first measurement. */
  clock_skew_ms: number | null;
  /** graphile-worker jobs locked by the node's worker pool. */
  running_jobs: number;
  /** Its history rows still marked running. */
  running_runs: number;
}

/** Nodes not stopped (and dead ones rescued within a day); `all` adds every stopped one. */
export async function listNodes(db: Queryable, options: { deadAfterMs: number; all?: boolean }): Promise<NodeRow[]> {
  const { rows } = await db.query<NodeRow>(LIST_NODES, [options.deadAfterMs, options.all ?? false]);
  return rows;
}
