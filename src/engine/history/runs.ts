import type { QueryConfig, QueryResult, QueryResultRow } from "pg";
import type { Queryable } from "../db/pool.ts";
import { readSql } from "../db/sql-file.ts";
import type { JobResult } from "./types.ts";

const CLAIM_RUN = readSql(import.meta.url, "claim_run.sql");
const RECORD_RUN = readSql(import.meta.url, "record_run.sql");
const RUN_AT_TICK = readSql(import.meta.url, "run_at_tick.sql");
// The happy path's last statement, on the run's own connection: in one round trip and one
// transaction, the outcome, the release of the task's lock ($18, which wakes the runs waiting
// for it) and the completion of the graphile-worker job ($2) while worker pool $19 still holds
// it (sql/engine/010: its queue is free before the worker asks for its next job). The row is
// written first (FROM is read before the select list): the next run's start, taken when it
// gets the lock, must come after this run's finished_at.
const RECORD_RUN_AND_FINISH = `
with recorded as (
${RECORD_RUN}
)
select f.unlocked, f.completed, written.n as recorded
from (select count(*)::int as n from recorded) as written, scheduler.finish_run_reporting($18, $2, $19) as f`;

// The run history of scheduler.job_runs: one row per attempt. A run gets its id and start
// time when it claims its lock (claim_run.sql); its row is written once, with its outcome,
// when it ends, unless it runs long enough to be shown as 'running' first (RUNNING_ROW_AFTER_MS):
// most runs are short, and one write per run instead of an insert and an update is what keeps
// the wrapper cheap. Outcomes are written in short autocommit statements, on the pool when the
// run's own connection may be broken, so a cancelled or broken run still gets its row.

// The statements every run sends are named prepared statements, so each connection parses
// and plans them once instead of on every run (graphile-worker names its own the same way):
// about half of the server's time per run. A name always goes with the same text. The
// Queryables given here are pg clients, pools and graphile-worker's helpers, which all pass
// a query config object through to pg.
function send<R extends QueryResultRow>(db: Queryable, name: string, text: string, values: unknown[]): Promise<QueryResult<R>> {
  const config: QueryConfig = { name: `systemprompt-scheduler/${name}`, text, values };
  return db.query<R>(config as unknown as string);
}

/** How long a run goes without a history row before it is shown as 'running'. */
export const RUNNING_ROW_AFTER_MS = 1000;

// Lifetime counts live in job_stats, kept by triggers on job_runs (sql/engine/025): deleting
// old rows changes no total.
const PRUNE_RUNS = `
with doomed as (
  select id from scheduler.job_runs
  where started_at < now() - make_interval(days => $1) and status <> 'running'
  order by id
  limit $2
),
gone as (
  delete from scheduler.job_runs r using doomed where r.id = doomed.id
  returning r.id
)
select count(*)::int as n from gone`;

export interface RunStart {
  jobId: string | null;
  jobName: string;
  task: string;
  attempt: number;
  nodeId: string;
  scheduledFor: Date | null;
  dryRun: boolean;
  payload: unknown;
  /** The delay `?jitter=` gave this tick (null: none). */
  jitterMs?: number | null;
}

/** A started run: what its row says, and the id and start time its claim gave it. */
export interface RunRecord extends RunStart {
  id: string | null;
  /** The claim's database time, as PostgreSQL wrote it (microseconds kept: runs in turn must not appear to overlap). */
  startedAt: string | null;
}

export type RunOutcome =
  | { status: "success"; result: JobResult }
  | { status: "failed"; error: string; result?: JobResult }
  /** A tick of an `?overlap=skip` entry that found a run in progress: recorded, not run. */
  | { status: "skipped"; result: JobResult };

function recordValues(run: RunRecord, outcome: RunOutcome | { status: "running" }): unknown[] {
  const result = "result" in outcome ? outcome.result : undefined;
  return [
    run.id,
    run.jobId,
    run.jobName,
    run.task,
    run.attempt,
    run.nodeId,
    run.scheduledFor,
    run.dryRun,
    JSON.stringify(run.payload ?? null),
    run.startedAt,
    outcome.status,
    "error" in outcome ? outcome.error : null,
    result?.itemsProcessed ?? 0,
    result?.itemsFailed ?? 0,
    result?.message ?? null,
    result?.details ? JSON.stringify(result.details) : null,
    run.jitterMs ?? null,
  ];
}

/** Shows a run in progress as 'running' (for a run that has gone on a while); never overwrites an outcome. */
export async function recordRunning(db: Queryable, run: RunRecord): Promise<void> {
  await send(db, "record_run", RECORD_RUN, recordValues(run, { status: "running" }));
}

/** Writes the run's outcome (a run with no id, e.g. refused before it started, gets one); returns the run's id. */
export async function recordOutcome(db: Queryable, run: RunRecord, outcome: RunOutcome): Promise<string | null> {
  const { rows } = await send<{ id: string }>(db, "record_run", RECORD_RUN, recordValues(run, outcome));
  return rows[0]?.id ?? run.id;
}

/**
 * Writes the run's success, releases the task's lock and completes the run's graphile-worker
 * job (still locked by `workerPool`) in one round trip, on the connection holding the lock.
 * Returns whether the job was completed here (false: a rescuer released it meanwhile).
 */
export async function recordSuccessAndFinish(db: Queryable, run: RunRecord, lockKey: string | null, workerPool: string | null, result: JobResult): Promise<{ completed: boolean }> {
  const { rows } = await send<{ completed: boolean }>(db, "record_run_and_finish", RECORD_RUN_AND_FINISH, [...recordValues(run, { status: "success", result }), lockKey, workerPool]);
  return { completed: rows[0]?.completed === true };
}

/**
 * The run of `scope` (a task, for exclusive jobs; else the entry) that was in progress at
 * `tick`, if any: started before it and not finished by then. Its row exists by the time a
 * later run holds the lock (outcomes are written before the lock is released), or it is
 * still 'running'.
 */
export async function runInProgressAt(db: Queryable, scope: { task: string } | { jobName: string }, tick: Date): Promise<string | null> {
  const { rows } = await db.query<{ id: string }>(RUN_AT_TICK, ["task" in scope ? scope.task : null, "jobName" in scope ? scope.jobName : null, tick]);
  return rows[0]?.id ?? null;
}

/** Deletes finished runs older than the retention, in batches; returns how many. */
export async function pruneRuns(db: Queryable, retentionDays: number, batchSize = 5000): Promise<number> {
  let total = 0;
  for (;;) {
    const { rows } = await db.query<{ n: number }>(PRUNE_RUNS, [retentionDays, batchSize]);
    const deleted = rows[0]?.n ?? 0;
    total += deleted;
    if (deleted < batchSize) return total;
  }
}

export type Claim = { locked: boolean; pausedAs: string | null; run: RunRecord | null };

/**
 * On the job's own connection: the task's run lock and the pause check in one statement.
 * `run` (with its id and start time) is set only when locked and not paused; a paused
 * claim may still hold the lock (release it with releaseRunLock). A claim that finds the
 * lock taken lists the job as waiting for it.
 */
export async function claimRun(db: Queryable, lockKey: string | null, run: RunStart): Promise<Claim> {
  const { rows } = await send<{ locked: boolean; paused_as: string | null; run_id: string | null; started_at: string }>(db, "claim_run", CLAIM_RUN, [lockKey, [run.jobName, run.task], run.jobId]);
  const row = rows[0]!;
  return { locked: row.locked, pausedAs: row.paused_as, run: row.run_id === null ? null : { ...run, id: row.run_id, startedAt: row.started_at } };
}

/** Releases the run lock (on the connection that holds it) and wakes the runs waiting for it. */
export async function releaseRunLock(db: Queryable, lockKey: string | null): Promise<void> {
  if (lockKey === null) return;
  await db.query("select scheduler.release_run_lock($1)", [lockKey]);
}

/**
 * Releases the run lock on every path: when the release itself fails (a late cancel, a
 * statement timeout, a server that turned read-only), the session that holds the lock is
 * ended instead, which releases it (the pool drops an ended client). A lock left on a pooled
 * session would make every node defer the task for as long as that connection lives.
 */
export async function releaseRunLockSurely(client: Queryable & { end(): Promise<void> }, lockKey: string | null, onEnded: (error: unknown) => void): Promise<void> {
  if (lockKey === null) return;
  try {
    await releaseRunLock(client, lockKey);
  } catch (error) {
    onEnded(error);
    await client.end().catch(() => {});
  }
}

/** A stuck run (recorded failed at its deadline) returned at last: no longer stuck. */
export async function markReturned(db: Queryable, runId: string): Promise<void> {
  await db.query(
    "update scheduler.job_runs set details = coalesce(details, '{}'::jsonb) || jsonb_build_object('stuck', false, 'returnedAt', clock_timestamp()) where id = $1 and details->>'stuck' = 'true'",
    [runId],
  );
}

/** Shows the run as 'running' once it has gone on for RUNNING_ROW_AFTER_MS; call the returned function when it ends. */
export function showRunningAfterAWhile(db: Queryable, run: RunRecord, onError: (error: unknown) => void): () => void {
  const timer = setTimeout(() => recordRunning(db, run).catch(onError), RUNNING_ROW_AFTER_MS);
  return () => clearTimeout(timer);
}
