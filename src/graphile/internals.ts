import type { JobHelpers, ParsedCronItem, Task, TaskList } from "graphile-worker";
import type { Queryable } from "../db/pool.ts";
import { SchedulerError } from "../errors.ts";

// Every reliance on graphile-worker's internals, in one place. graphile-worker is pinned to
// ~0.18.0; each item below has a contract test (test/graphile/internals.test.ts) that fails
// loudly when an upgrade changes it. Anything else in the project uses only its public API
// (run, parseCrontab, add_job, force_unlock_workers, the graphile_worker.jobs view).
//
// SQL that relies on internals lives in migrations and is listed here too:
// - sql/007: scheduler.defer_locked_job and scheduler.wake_lock_waiters write
//   graphile_worker._private_jobs (attempts, run_at) and notify the `jobs:insert` channel;
// - sql/006/007: scheduler.rescue_dead_nodes, release_node and list_nodes.sql read
//   graphile_worker.jobs.locked_by, which holds the worker *pool* id (0.17+).

/**
 * graphile-worker's prepared statement names (`<name>/<schema>`) whose statements are
 * idempotent bookkeeping (complete, fail, return a job; clear stale locks; the cron tick,
 * guarded by known_crontabs), so the patient pool may re-send them on a fresh connection.
 */
export const IDEMPOTENT_STATEMENT = /^(complete_job|complete_job_q|complete_jobs|fail_job|fail_job_q|fail_jobs|return_job|return_job_q|clear_stale_locks|clear_stale_locksN|cron|cronN)\//;

/** The channel graphile-worker's workers LISTEN on for new jobs (used in sql/006 and sql/007). */
export const JOBS_INSERT_CHANNEL = "jobs:insert";

export interface CronFields {
  minutes: number[];
  hours: number[];
  dates: number[];
  months: number[];
  dows: number[];
}

/** graphile-worker's own expansion of a crontab line's five fields (`match.parsedCronMatch`). */
export function cronFieldsOf(item: ParsedCronItem): CronFields {
  const match = (item.match as unknown as { parsedCronMatch?: CronFields }).parsedCronMatch;
  if (!match) throw new SchedulerError("graphile_incompatible", "graphile-worker's parsed crontab has no parsedCronMatch; this graphile-worker version is not supported", { hint: "use graphile-worker ~0.18.0" });
  return match;
}

/**
 * Replaces the cron items of a running graphile-worker in place: its cron loop reads the
 * array it was given at `run()` on every tick, so the change applies from the next minute.
 */
export function replaceLiveCronItems(live: ParsedCronItem[], next: ParsedCronItem[]): void {
  live.splice(0, live.length, ...next);
}

/**
 * Adds a task to a running graphile-worker: its workers look tasks up in the task list
 * object given to `run()` on every job, and re-read its keys (the task identifiers they ask
 * the database for) whenever they change.
 */
export function addLiveTask(taskList: TaskList, name: string, task: Task): void {
  taskList[name] = task;
}

/** Makes the running attempt of a job its last: a payload that can never succeed. */
export async function makeAttemptFinal(helpers: JobHelpers): Promise<void> {
  await helpers.query("update graphile_worker._private_jobs set max_attempts = attempts where id = $1", [helpers.job.id]);
}

/**
 * Puts the job back in the queue to wait for lock `lockKey` without using an attempt;
 * the caller then throws so that graphile-worker releases it. See sql/007.
 */
export async function deferLockedJob(db: Queryable, jobId: string, lockKey: string): Promise<void> {
  await db.query("select scheduler.defer_locked_job($1, $2)", [jobId, lockKey]);
}
