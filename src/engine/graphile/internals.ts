import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { CronJob, JobHelpers, ParsedCronItem, Task, TaskList, TimestampDigest, WorkerEvents, WorkerPool } from "graphile-worker";
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
// - sql/engine/010, 022: scheduler.finish_run(_reporting) completes a defined job's graphile-worker
//   job in the run's last transaction as graphile-worker's complete_job_q does (deletes the
//   _private_jobs row, unlocks its _private_job_queues row), so graphile-worker's own
//   completion would find nothing: finishedJobs below lets the node's pool skip it, by its
//   statement names and values (complete_job_q/complete_jobs: [ids, ...], complete_job: [id]);
// - sql/006/007: scheduler.rescue_dead_nodes, release_node and list_nodes.sql read
//   graphile_worker.jobs.locked_by, which holds the worker *pool* id (0.17+);
// - sql/grants/engine.sql: the tables its workers write (_private_jobs, _private_job_queues,
//   _private_tasks, _private_known_crontabs), and their row level security (enabled, no
//   policy: a runtime role needs a policy of its own);
// - latestGraphileMigration below: its package ships its migrations as sql/NNNNNN.sql;
// - sql/engine/021: a trigger on _private_known_crontabs records missed ticks; it relies on
//   its cron advancing last_execution to each tick it queues, in order, by an upsert (tested
//   end to end in test/engine/runner/late_and_missed.test.ts with its real cron and backfill).
// - crontab/cron-loop.ts and its SQL: the node's cron is graphile-worker's cron loop run on
//   the database's clock (graphile-worker's own is given no entries). It keeps its
//   bookkeeping (_private_known_crontabs, read at start, upserted per tick, add_job with the
//   entry's job key), its job objects (makeJobForItem) and its `cron:*` events.
// - sql/engine/023: scheduler.release_lost_jobs returns jobs the node's pool locked but never
//   ran as its returnJobs does (locked_by/locked_at null, attempts - 1, the queue row
//   unlocked when the pool holds it); which jobs the node holds comes from jobsHeldBy below.
//
// Zoned crontab lines, overlap and jitter (docs/schedules.md) rely on its cron loop's contract, which the node's
// loop (crontab/cron-loop.ts) keeps: an item's `match` is called with a digest of each UTC
// minute, live and in backfill (cronMatcherByInstant), and the job objects of
// `cron:schedule`/`cron:backfill` are the ones it writes (delayCronJobs).

/**
 * graphile-worker's prepared statement names (`<name>/<schema>`) whose statements are
 * idempotent bookkeeping (complete, fail, return a job; clear stale locks; the cron tick,
 * guarded by known_crontabs, and the node's own, `cron_tick`: crontab/cron-loop.ts), so the
 * patient pool may re-send them on a fresh connection.
 */
export const IDEMPOTENT_STATEMENT = /^(complete_job|complete_job_q|complete_jobs|fail_job|fail_job_q|fail_jobs|return_job|return_job_q|clear_stale_locks|clear_stale_locksN|cron|cronN|cron_tick)\//;

/** graphile-worker's completion statements (sql/completeJobs.js): the job ids are their first value. */
const COMPLETION_STATEMENT = /^(complete_job|complete_job_q|complete_jobs)\//;

/**
 * The jobs whose completion scheduler.finish_run did in the run's own last transaction
 * (sql/engine/022). graphile-worker still sends its completion for each, which would find no
 * row: `covers` says when a completion statement is only about such jobs, so that the node's
 * pool answers it without a round trip. Every id a statement names is forgotten then, covered
 * or not, so nothing accumulates while completions flow through this pool.
 */
export interface FinishedJobs {
  add(jobId: string): void;
  covers(config: { name?: string; values?: unknown[] }): boolean;
  readonly size: number;
}

export function finishedJobs(): FinishedJobs {
  const ids = new Set<string>();
  return {
    add: (jobId) => void ids.add(jobId),
    covers(config) {
      if (!config.name || !COMPLETION_STATEMENT.test(config.name)) return false;
      const first = config.values?.[0];
      const named = (Array.isArray(first) ? first : [first]).map(String);
      if (named.length === 0) return false;
      let all = true;
      for (const id of named) if (!ids.delete(id)) all = false;
      return all;
    },
    get size() {
      return ids.size;
    },
  };
}

/** Job objects (the one graphile-worker passes to the task and to its events) whose run completed them. */
const completedInRun = new WeakSet<object>();
export const markCompletedInRun = (job: object): void => void completedInRun.add(job);
export const wasCompletedInRun = (job: object): boolean => completedInRun.has(job);

/** The channel graphile-worker's workers LISTEN on for new jobs (used in sql/006 and sql/007). */
export const JOBS_INSERT_CHANNEL = "jobs:insert";

/** Wakes up to `count` idle workers on every node, as graphile-worker's add_job does. */
export async function announceJobs(db: Queryable, count: number): Promise<void> {
  await db.query("select pg_notify($1, $2)", [JOBS_INSERT_CHANNEL, JSON.stringify({ count })]);
}

/** What jobsHeldBy reads of graphile-worker's LocalQueue (not exported by its package). */
export interface HeldQueue {
  readonly jobQueue: readonly { id: string }[];
}

/**
 * The ids of the jobs a worker pool holds: those its workers run now (WorkerPool._workers,
 * Worker.getActiveJob) and, with a local queue (preset.worker.localQueue), those it fetched
 * for them (LocalQueue.jobQueue). Every other job locked by the pool is one no worker will run.
 */
export function jobsHeldBy(workerPool: WorkerPool | null, localQueue: HeldQueue | null): string[] {
  const running = (workerPool?._workers ?? []).map((worker) => worker.getActiveJob()?.id);
  const queued = (localQueue?.jobQueue ?? []).map((job) => job.id);
  return [...running, ...queued].filter((id): id is string => id != null).map(String);
}

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
 * The UTC instant graphile-worker's cron is asking about. Its cron loop and its backfill
 * call an item's `match` with only a digest of the minute (UTC minute, hour, date, month,
 * day of week: no year), for minutes near now: the live minute, or one within the item's
 * `fill=` period before it. The year is the one that puts the digest closest to `now` (and
 * on the digest's day of week), which is right for any minute within half a year of now;
 * parse.ts refuses a longer `fill=` on zoned lines.
 */
export function instantOfDigest(digest: TimestampDigest, now: number): number | null {
  const year = new Date(now).getUTCFullYear();
  let best: number | null = null;
  for (const candidate of [year - 1, year, year + 1]) {
    const instant = Date.UTC(candidate, digest.month - 1, digest.date, digest.hour, digest.min);
    const back = new Date(instant);
    // 29 February of a year without one rolls over to 1 March: not this digest.
    if (back.getUTCDate() !== digest.date || back.getUTCDay() !== digest.dow) continue;
    if (best === null || Math.abs(instant - now) < Math.abs(best - now)) best = instant;
  }
  return best;
}

/**
 * A cron matcher for graphile-worker that decides by the UTC instant instead of its digest:
 * how zoned crontab lines fire through graphile-worker's cron loop and backfill (the node's
 * copy of it, crontab/cron-loop.ts, calls `match` the same way), and so
 * keep its exactly-once scheduling across nodes (the `_private_known_crontabs` row lock is
 * taken per identifier and UTC minute, whatever decided that the minute fires).
 * `parsedCronMatch` is kept so cronFieldsOf still reads the fields as written.
 */
export function cronMatcherByInstant(fires: (utcMs: number) => boolean, fields: CronFields, clock: () => number = Date.now): ParsedCronItem["match"] {
  const matcher = (digest: TimestampDigest) => {
    const instant = instantOfDigest(digest, clock());
    return instant !== null && fires(instant);
  };
  return Object.assign(matcher, { parsedCronMatch: fields });
}

/**
 * Holds cron jobs back after their tick: graphile-worker emits `cron:schedule` (live ticks)
 * and `cron:backfill` (filled ones) with the very job objects it then writes with add_job, on
 * every node, before the known_crontabs lock decides which node's write counts. Setting a
 * job's `runAt` there makes it due later; `delayOf` must therefore give the same delay on
 * every node for the same identifier and tick. The delay is put in the payload too
 * (`_jitter_ms`); `_cron.ts` stays the tick. `onDelayed` hears of each delayed job's due
 * time (idle workers poll rarely: the node wakes them then).
 */
export function delayCronJobs(
  events: WorkerEvents,
  delayOf: (identifier: string, job: CronJob) => number,
  onDelayed: (dueAt: number) => void,
): { stop(): void } {
  const hold = (items: { identifier: string; job: CronJob }[]) => {
    for (const { identifier, job } of items) {
      const delay = delayOf(identifier, job);
      if (delay <= 0) continue;
      const dueAt = Date.parse(job.payload._cron.ts) + delay;
      job.runAt = new Date(dueAt).toISOString();
      job.payload._jitter_ms = delay;
      onDelayed(dueAt);
    }
  };
  const onSchedule = ({ jobsAndIdentifiers }: { jobsAndIdentifiers: { identifier: string; job: CronJob }[] }) => hold(jobsAndIdentifiers);
  const onBackfill = ({ itemsToBackfill }: { itemsToBackfill: { identifier: string; job: CronJob }[] }) => hold(itemsToBackfill);
  events.on("cron:schedule", onSchedule);
  events.on("cron:backfill", onBackfill);
  return {
    stop() {
      events.off("cron:schedule", onSchedule);
      events.off("cron:backfill", onBackfill);
    },
  };
}

/**
 * Replaces the cron items of a running cron loop in place: graphile-worker's reads the array
 * it was given at `run()` on every tick, and so does the node's (crontab/cron-loop.ts), so the
 * change applies from the next minute.
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

/**
 * The number of graphile-worker's latest migration in the installed package: its `sql/`
 * folder (shipped beside `dist/`) holds one `NNNNNN.sql` per migration. A node compares it
 * with graphile_worker.migrations to know, without DDL, whether the schema is current.
 * null when the folder cannot be found (then graphile-worker's own migrate decides).
 */
export function latestGraphileMigration(): number | null {
  try {
    const entry = fileURLToPath(import.meta.resolve("graphile-worker"));
    const numbers = fs.readdirSync(path.join(path.dirname(entry), "..", "sql"))
      .map((file) => /^(\d{6})\.sql$/.exec(file)?.[1])
      .filter((digits): digits is string => digits !== undefined)
      .map(Number);
    return numbers.length > 0 ? Math.max(...numbers) : null;
  } catch {
    return null;
  }
}
