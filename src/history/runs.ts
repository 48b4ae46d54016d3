import type { Queryable } from "../db/pool.ts";
import { readSql } from "../db/sql-file.ts";
import type { JobResult } from "./types.ts";

const CLAIM_RUN = readSql(import.meta.url, "claim_run.sql");
const RECORD_RUN = readSql(import.meta.url, "record_run.sql");
// The happy path's last statement, on the run's own connection: the outcome and the release
// of the task's lock ($17, which wakes the runs waiting for it) in one round trip.
const RECORD_RUN_AND_UNLOCK = `
with recorded as (
${RECORD_RUN}
)
select case when $17::text is null then null else scheduler.release_run_lock($17) end as unlocked,
       (select count(*) from recorded)::int as recorded`;

// The run history of scheduler.job_runs: one row per attempt. A run gets its id and start
// time when it claims its lock (claim_run.sql); its row is written once, with its outcome,
// when it ends, unless it runs long enough to be shown as 'running' first (RUNNING_ROW_AFTER_MS):
// most runs are short, and one write per run instead of an insert and an update is what keeps
// the wrapper cheap. Outcomes are written in short autocommit statements, on the pool when the
// run's own connection may be broken, so a cancelled or broken run still gets its row.

/** How long a run goes without a history row before it is shown as 'running'. */
export const RUNNING_ROW_AFTER_MS = 1000;

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

/** A started run: what its row says, and the id and start time its claim gave it. */
export interface RunRecord extends RunStart {
  id: string | null;
  /** The claim's database time, as PostgreSQL wrote it (microseconds kept: runs in turn must not appear to overlap). */
  startedAt: string | null;
}

export type RunOutcome = { status: "success"; result: JobResult } | { status: "failed"; error: string; result?: JobResult };

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
  ];
}

/** Shows a run in progress as 'running' (for a run that has gone on a while); never overwrites an outcome. */
export async function recordRunning(db: Queryable, run: RunRecord): Promise<void> {
  await db.query(RECORD_RUN, recordValues(run, { status: "running" }));
}

/** Writes the run's outcome (a run with no id, e.g. refused before it started, gets one); returns the run's id. */
export async function recordOutcome(db: Queryable, run: RunRecord, outcome: RunOutcome): Promise<string | null> {
  const { rows } = await db.query<{ id: string }>(RECORD_RUN, recordValues(run, outcome));
  return rows[0]?.id ?? run.id;
}

/** Writes the run's success and releases the task's lock in one round trip (on the connection holding the lock). */
export async function recordSuccessAndUnlock(db: Queryable, run: RunRecord, lockKey: string | null, result: JobResult): Promise<void> {
  await db.query(RECORD_RUN_AND_UNLOCK, [...recordValues(run, { status: "success", result }), lockKey]);
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

export type Claim = { locked: boolean; pausedAs: string | null; run: RunRecord | null };

/**
 * On the job's own connection: the task's run lock and the pause check in one statement.
 * `run` (with its id and start time) is set only when locked and not paused; a paused
 * claim may still hold the lock (release it with releaseRunLock). A claim that finds the
 * lock taken lists the job as waiting for it.
 */
export async function claimRun(db: Queryable, lockKey: string | null, run: RunStart): Promise<Claim> {
  const { rows } = await db.query<{ locked: boolean; paused_as: string | null; run_id: string | null; started_at: string }>(CLAIM_RUN, [lockKey, [run.jobName, run.task], run.jobId]);
  const row = rows[0]!;
  return { locked: row.locked, pausedAs: row.paused_as, run: row.run_id === null ? null : { ...run, id: row.run_id, startedAt: row.started_at } };
}

/** Releases the run lock (on the connection that holds it) and wakes the runs waiting for it. */
export async function releaseRunLock(db: Queryable, lockKey: string | null): Promise<void> {
  if (lockKey === null) return;
  await db.query("select scheduler.release_run_lock($1)", [lockKey]);
}

/** Shows the run as 'running' once it has gone on for RUNNING_ROW_AFTER_MS; call the returned function when it ends. */
export function showRunningAfterAWhile(db: Queryable, run: RunRecord, onError: (error: unknown) => void): () => void {
  const timer = setTimeout(() => recordRunning(db, run).catch(onError), RUNNING_ROW_AFTER_MS);
  return () => clearTimeout(timer);
}
