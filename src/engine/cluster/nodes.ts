import crypto from "node:crypto";
import type { Queryable } from "../db/pool.ts";

// The node registry (scheduler.nodes, sql/002 and sql/006): register, record the worker pool
// id graphile-worker locks jobs with, heartbeat, and release on a clean shutdown.

export interface NodeRegistration {
  nodeId: string;
  host: string;
  version: string;
  /** What this node's connections call themselves (see applicationNameFor). */
  applicationName: string;
  /** The tasks this node can run (`run` refuses a task no live node knows). */
  tasks?: string[];
}

const REGISTER = `
insert into scheduler.nodes (node_id, host, pid, version, application_name, tasks, holds_liveness_lock)
values ($1, $2, $3, $4, $5, $6, true)
on conflict (node_id) do update
  set last_heartbeat_at = now(), stopped_at = null, dead_at = null, dead_by = null, holds_liveness_lock = true,
      application_name = excluded.application_name, tasks = coalesce(excluded.tasks, scheduler.nodes.tasks)`;

const TAKE_LIVENESS_LOCK = "select scheduler.take_liveness_lock($1, $2) as outcome";

const PRIMARY_SINCE = "select scheduler.primary_since() as since";

const PUBLISH_TASKS = "update scheduler.nodes set tasks = $2 where node_id = $1";

const RECORD_WORKER_POOL = "update scheduler.nodes set worker_pool_id = $2 where node_id = $1";

const HEARTBEAT = "select was_dead_at, was_dead_by, quiet_nodes, database_clock_ms from scheduler.node_beat($1, make_interval(secs => $2::float8 / 1000), $3::int)";

const RELEASE = "select jobs_released, runs_abandoned from scheduler.release_node($1)";

export function newNodeId(host: string): string {
  return `${host}:${process.pid}:${crypto.randomBytes(3).toString("hex")}`;
}

/**
 * The application_name of every connection a node opens: unique per node (its pid and
 * random suffix come first, as PostgreSQL keeps only 63 bytes), so a rescuer can end the
 * sessions a dead node left behind.
 */
export function applicationNameFor(nodeId: string): string {
  const parts = nodeId.split(":");
  const unique = parts.slice(-2).join(":");
  const host = parts.slice(0, -2).join(":");
  return Buffer.from(`sps-node ${unique} ${host}`).subarray(0, 63).toString("utf8").replace(/\uFFFD+$/, "");
}

export async function registerNode(db: Queryable, node: NodeRegistration): Promise<void> {
  await db.query(REGISTER, [node.nodeId, node.host, process.pid, node.version, node.applicationName, node.tasks ?? null]);
}

/**
 * On the node's own session: held until that session ends (sql/009). Never waits on the lock
 * (sql/024): a session of this node from before a network cut may still hold it, and is
 * ended; a rescuer checking the lock holds it for a moment only. Fails after `timeoutMs`.
 */
export async function takeLivenessLock(db: Queryable, nodeId: string, applicationName: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let outcome = "held";
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    const { rows } = await db.query<{ outcome: string }>(TAKE_LIVENESS_LOCK, [nodeId, applicationName]);
    outcome = rows[0]!.outcome;
    if (outcome === "taken") return;
    await new Promise((resolve) => setTimeout(resolve, Math.min(500, 20 * 2 ** attempt)));
  }
  throw new Error(
    outcome === "ended"
      ? `this node's liveness lock is still held by an older session of its own after it was ended (server process slow to exit?); will retry`
      : `this node's liveness lock is held by another session (not this node's: the application_name differs); will retry`,
  );
}

/** When the server became the primary, as the cluster first saw it (sql/024); -infinity for the one migrated. */
export async function primarySince(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ since: Date | number }>(PRIMARY_SINCE);
  const since = rows[0]!.since;
  return since instanceof Date ? since.getTime() : Number(since);
}

export async function publishNodeTasks(db: Queryable, nodeId: string, tasks: string[]): Promise<void> {
  await db.query(PUBLISH_TASKS, [nodeId, tasks]);
}

export async function recordWorkerPool(db: Queryable, nodeId: string, workerPoolId: string): Promise<void> {
  await db.query(RECORD_WORKER_POOL, [nodeId, workerPoolId]);
}

/**
 * `quietNodes`: other nodes that have missed a beat (silent longer than `quietAfterMs`): candidates for rescue.
 * `databaseClockMs`: the database's clock_timestamp() during the beat (a clock measurement, cluster/clock.ts).
 */
export type HeartbeatVerdict = "unknown" | { deadAt: Date | null; deadBy: string | null; quietNodes: number; databaseClockMs: number };

/**
 * Beats, recording the node's clock skew as last measured (null: keep the one recorded); says
 * whether the node had been declared dead meanwhile, or is unknown, and how many other nodes are quiet.
 */
export async function heartbeatNode(db: Queryable, nodeId: string, quietAfterMs: number, clockSkewMs: number | null = null): Promise<HeartbeatVerdict> {
  const { rows } = await db.query<{ was_dead_at: Date | null; was_dead_by: string | null; quiet_nodes: number; database_clock_ms: number }>(HEARTBEAT, [
    nodeId,
    quietAfterMs,
    clockSkewMs === null ? null : Math.round(clockSkewMs),
  ]);
  const row = rows[0];
  return row ? { deadAt: row.was_dead_at, deadBy: row.was_dead_by, quietNodes: row.quiet_nodes, databaseClockMs: row.database_clock_ms } : "unknown";
}

/** Clean shutdown, once the worker has stopped: frees what the node's pool still holds. */
export async function releaseNode(db: Queryable, nodeId: string): Promise<{ jobsReleased: string[]; runsAbandoned: string[] }> {
  const { rows } = await db.query<{ jobs_released: string[] | null; runs_abandoned: string[] | null }>(RELEASE, [nodeId]);
  return { jobsReleased: rows[0]?.jobs_released ?? [], runsAbandoned: rows[0]?.runs_abandoned ?? [] };
}

/** Records the node's crontab state: the rejected edit in force (when, why), or none. */
export async function recordCrontabState(db: Queryable, nodeId: string, rejection: { at: Date; error: string } | null): Promise<void> {
  await db.query("update scheduler.nodes set crontab_rejected_at = $2, crontab_error = $3 where node_id = $1", [nodeId, rejection?.at ?? null, rejection?.error ?? null]);
}
