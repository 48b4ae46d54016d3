import type { Queryable } from "../db/pool.ts";
import { readSql } from "../db/sql-file.ts";
import type { JobResult } from "./types.ts";

const CLAIM_RUN = readSql(import.meta.url, "claim_run.sql");
const FINISH_RUN_AND_UNLOCK = readSql(import.meta.url, "finish_run_unlock.sql");

// The run history of scheduler.job_runs: one row per attempt, written in short
// autocommit statements on the pool, never on the job's own connection, so a
// cancelled or broken run still gets its row finished.

const START_RUN = `
insert into scheduler.job_runs (job_id, job_name, task, attempt, node_id, scheduled_for, dry_run, payload)
values ($1, $2, $3, $4, $5, $6, $7, $8)
returning id`;

const FINISH_RUN = `
update scheduler.job_runs
set status = $2,
    finished_at = clock_timestamp(),
    duration_ms = greatest(0, round(extract(epoch from clock_timestamp() - started_at) * 1000))::int,
    error = $3,
    items_processed = $4,
    items_failed = $5,
    message = $6,
    details = $7
where id = $1 and status = 'running'`;

const PRUNE_RUNS = `
with doomed as (
  select id from scheduler.job_runs
  where started_at < now() - make_interval(days => $1) and status <> 'running'
  order by id
  limit $2
),
gone as (
  delete from scheduler.job_runs r using doomed where r.id = doomed.id
  returning r.job_name, r.status
),
folded as (
  insert into scheduler.job_stats as st (job_name, pruned_runs, pruned_successes, pruned_failures)
  select job_name, count(*), count(*) filter (where status = 'success'), count(*) filter (where status in ('failed', 'abandoned'))
  from gone group by job_name
  on conflict (job_name) do update set
    pruned_runs = st.pruned_runs + excluded.pruned_runs,
    pruned_successes = st.pruned_successes + excluded.pruned_successes,
    pruned_failures = st.pruned_failures + excluded.pruned_failures
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
}

/** The columns of a new 'running' row, in the order START_RUN and CLAIM_RUN take them. */
function runColumns(run: RunStart): unknown[] {
  return [run.jobId, run.jobName, run.task, run.attempt, run.nodeId, run.scheduledFor, run.dryRun, JSON.stringify(run.payload ?? null)];
}

export async function startRun(db: Queryable, run: RunStart): Promise<string> {
  const { rows } = await db.query<{ id: string }>(START_RUN, runColumns(run));
  return rows[0]!.id;
}

export async function finishRun(db: Queryable, runId: string, outcome: { status: "success" | "failed"; error?: string; result?: JobResult }): Promise<void> {
  const result = outcome.result;
  await db.query(FINISH_RUN, [
    runId,
    outcome.status,
    outcome.error ?? null,
    result?.itemsProcessed ?? 0,
    result?.itemsFailed ?? 0,
    result?.message ?? null,
    result?.details ? JSON.stringify(result.details) : null,
  ]);
}

/** Deletes finished runs older than the retention, in batches, folding them into job_stats; returns how many. */
export async function pruneRuns(db: Queryable, retentionDays: number, batchSize = 5000): Promise<number> {
  let total = 0;
  for (;;) {
    const { rows } = await db.query<{ n: number }>(PRUNE_RUNS, [retentionDays, batchSize]);
    const deleted = rows[0]?.n ?? 0;
    total += deleted;
    if (deleted < batchSize) return total;
  }
}

export type Claim = { locked: boolean; pausedAs: string | null; runId: string | null };

/**
 * On the job's own connection: the task's run lock, the pause check and the
 * 'running' row in one statement. `runId` is set only when locked and not paused;
 * a paused claim may still hold the lock (release it with releaseRunLock). A claim
 * that finds the lock taken lists the job as waiting for it.
 */
export async function claimRun(db: Queryable, lockKey: string | null, run: RunStart): Promise<Claim> {
  const { rows } = await db.query<{ locked: boolean; paused_as: string | null; run_id: string | null }>(CLAIM_RUN, [
    lockKey,
    [run.jobName, run.task],
    ...runColumns(run),
  ]);
  const row = rows[0]!;
  return { locked: row.locked, pausedAs: row.paused_as, runId: row.run_id };
}

/** The happy path's last statement: the run's success and the lock's release together. */
export async function finishRunAndUnlock(db: Queryable, runId: string, lockKey: string | null, result: JobResult): Promise<void> {
  await db.query(FINISH_RUN_AND_UNLOCK, [
    runId,
    result.itemsProcessed,
    result.itemsFailed,
    result.message,
    result.details ? JSON.stringify(result.details) : null,
    lockKey,
  ]);
}

/** Releases the run lock (on the connection that holds it) and wakes the runs waiting for it. */
export async function releaseRunLock(db: Queryable, lockKey: string | null): Promise<void> {
  if (lockKey === null) return;
  await db.query("select scheduler.release_run_lock($1)", [lockKey]);
}
