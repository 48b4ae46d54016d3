// Failovers put to real nodes, shared by the failover tests and `npm run bench:failover`: a
// PostgreSQL 15 primary with a streaming standby (test/helpers/replication.ts), nodes on a
// multi-host URL or behind a re-pointed PgBouncer, jobs that each write an effect row, and the
// figures that matter: jobs lost, jobs repeated, time from promotion to the first job done.
import path from "node:path";
import pg from "pg";
import { pgbouncerBinary, startPgBouncer, type PgBouncer } from "../../helpers/pgbouncer.ts";
import { replicationBinaries, startReplicatedCluster, type ReplicatedCluster, type Server } from "../../helpers/replication.ts";
import { eventually } from "../../helpers/wait.ts";
import { fixtures, NodeProcess } from "./harness.ts";

export const DATABASE = "failover";

/** Why the scenarios cannot run here, or null. */
export function scenarioSkip(options: { pgbouncer?: boolean } = {}): string | false {
  if (process.env.TEST_SCENARIOS === "skip") return "failover scenarios run once per CI run (TEST_SCENARIOS=skip on this pass)";
  if (!replicationBinaries) return "PostgreSQL 15 server binaries (initdb, pg_ctl, pg_basebackup) not found: apt-get install postgresql-15";
  if (options.pgbouncer && !pgbouncerBinary) return "pgbouncer is not installed: apt-get install pgbouncer (.ci/run does)";
  return false;
}

/** A libpq multi-host URL of the failover database on `servers`, in that order. */
export function multiHostUrl(servers: { port: number }[], query = "target_session_attrs=read-write"): string {
  return `postgres://postgres@${servers.map((server) => `127.0.0.1:${server.port}`).join(",")}/${DATABASE}${query ? `?${query}` : ""}`;
}

export async function startFailoverCluster(options: { synchronous?: boolean } = {}): Promise<ReplicatedCluster> {
  const cluster = await startReplicatedCluster({ standbys: 1, synchronous: options.synchronous, databases: [DATABASE] });
  const client = new pg.Client({ connectionString: cluster.primary.url(DATABASE) });
  await client.connect();
  await client.query("create table failover_effects (id bigserial primary key, tag text not null, node_id text not null, port int not null, at timestamptz not null default clock_timestamp())");
  await client.query("create index on failover_effects (tag)");
  await client.end();
  return cluster;
}

/** Nodes on the failover fixtures (effect and tick), with cluster timings short enough for a test. */
export function failoverNode(name: string, url: string, env: Record<string, string> = {}): NodeProcess {
  return new NodeProcess(name, {
    DATABASE_URL: url,
    SCHEDULER_HOST: name,
    SCHEDULER_TASKS_DIR: path.join(fixtures, "failover", "tasks"),
    SCHEDULER_CRONTAB: path.join(fixtures, "failover", "crontab"),
    SCHEDULER_CONCURRENCY: "4",
    SCHEDULER_RECONCILE_SERVICES: "false",
    SCHEDULER_HEARTBEAT_MS: "1000",
    SCHEDULER_NODE_DEAD_AFTER_MS: "6000",
    SCHEDULER_RESCUE_INTERVAL_MS: "1000",
    ...env,
  });
}

/** Queues `count` effect jobs tagged `${prefix}-N` (each sleeping `ms` first), in no queue (they run side by side). */
export async function queueEffects(db: pg.ClientBase | pg.Pool, prefix: string, count: number, offset = 0, ms = 0): Promise<string[]> {
  await db.query(
    "select count(graphile_worker.add_job('effect', json_build_object('tag', $1 || '-' || i, 'ms', $4::int))) from generate_series($2::int, $3::int) i",
    [prefix, offset, offset + count - 1, ms],
  );
  return Array.from({ length: count }, (_, i) => `${prefix}-${offset + i}`);
}

export async function effectCount(db: pg.ClientBase | pg.Pool, prefix: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>("select count(distinct tag)::int as n from failover_effects where tag like $1 || '-%'", [prefix]);
  return rows[0]!.n;
}

/** Tags without an effect, and tags with more than one. */
export async function effectTally(db: pg.ClientBase | pg.Pool, prefix: string, tags: string[]): Promise<{ lost: string[]; repeated: string[] }> {
  const { rows } = await db.query<{ tag: string; n: number }>("select tag, count(*)::int as n from failover_effects where tag like $1 || '-%' group by tag", [prefix]);
  const seen = new Map(rows.map((row) => [row.tag, row.n]));
  return { lost: tags.filter((tag) => !seen.has(tag)), repeated: rows.filter((row) => row.n > 1).map((row) => row.tag) };
}

/** When the first effect was written on `server` at or after `sinceMs` (epoch ms), or null. */
export async function firstEffectOn(db: pg.ClientBase | pg.Pool, server: Server, sinceMs: number): Promise<number | null> {
  const { rows } = await db.query<{ at: Date | null }>("select min(at) as at from failover_effects where port = $1 and at >= to_timestamp($2::float8 / 1000)", [server.port, sinceMs]);
  return rows[0]?.at ? rows[0].at.getTime() : null;
}

/** Jobs locked right now (in flight: these may run twice). */
export async function lockedJobs(db: pg.ClientBase | pg.Pool): Promise<number> {
  const { rows } = await db.query<{ n: number }>("select count(*)::int as n from graphile_worker.jobs where locked_at is not null");
  return rows[0]!.n;
}

export interface HardFailoverResult {
  jobs: number;
  lost: number;
  repeated: number;
  inFlight: number;
  /** From the promotion (pg_ctl promote issued, pooler re-pointed) to the first effect written on the new primary. */
  resumeMs: number;
  /** From the promotion to the last job done. */
  drainedMs: number;
}

/**
 * Kills the primary mid-work (`pg_ctl stop -m immediate`), promotes the standby and measures:
 * `count` effect jobs queued, the crash once `crashAfter` of them are done.
 */
export async function hardFailover(
  cluster: ReplicatedCluster,
  options: { prefix: string; count: number; crashAfter: number; bouncer?: PgBouncer; timeoutMs?: number },
): Promise<HardFailoverResult> {
  const { prefix, count } = options;
  const before = new pg.Client({ connectionString: cluster.primary.url(DATABASE) });
  await before.connect();
  const tags = await queueEffects(before, prefix, count);
  await eventually(async () => (await effectCount(before, prefix)) >= options.crashAfter, { timeoutMs: 60_000, intervalMs: 20, what: `${options.crashAfter} effects before the crash` });
  const inFlight = await lockedJobs(before);
  await before.end();
  await cluster.crashPrimary();
  // The clock starts when the promotion is asked for: the standby accepts writes a little later.
  const promotedAt = Date.now();
  await cluster.promote();
  if (options.bouncer) await options.bouncer.repoint({ host: "127.0.0.1", port: cluster.primary.port });
  const after = new pg.Client({ connectionString: cluster.primary.url(DATABASE) });
  await after.connect();
  try {
    const first = await eventually(() => firstEffectOn(after, cluster.primary, promotedAt), { timeoutMs: options.timeoutMs ?? 60_000, intervalMs: 20, what: "a job completed on the new primary" });
    await eventually(async () => (await effectCount(after, prefix)) === count, { timeoutMs: options.timeoutMs ?? 120_000, intervalMs: 100, what: `all ${count} effects on the new primary` });
    const drainedMs = Date.now() - promotedAt;
    const tally = await effectTally(after, prefix, tags);
    return { jobs: count, lost: tally.lost.length, repeated: tally.repeated.length, inFlight, resumeMs: Math.max(0, first - promotedAt), drainedMs };
  } finally {
    await after.end();
  }
}

export { startPgBouncer };
