import type { WorkerEvents, WorkerPool } from "graphile-worker";
import type { Queryable } from "../db/pool.ts";
import { errorMessage } from "../errors.ts";
import { wasCompletedInRun } from "../graphile/internals.ts";
import type { Logger } from "../log.ts";

// Nodes poll for jobs rarely (SCHEDULER_POLL_INTERVAL_MS, 30 s by default) because a new job
// wakes them through LISTEN/NOTIFY. Three things would otherwise wait for the next poll:
// - a retry: graphile-worker puts a failed attempt back with run_at = now + e^min(attempts, 10)
//   seconds and notifies nobody, so the node whose attempt failed wakes its own workers when
//   the retry is due (should it die meanwhile, any node's next poll finds the job). "now" is
//   when its fail_job statement lands, which may be long after the attempt failed (during a
//   database outage it waits for the server to come back): so when the back-off has passed,
//   the job's row says whether it is due yet, still being failed, or gone;
// - a job that was waiting for its queue: a worker that found every queue with work taken
//   sleeps, and the queue's next job was announced long ago. The worker that completes a job
//   looks for its next one at once, usually taking the queue it just freed; only when it takes
//   a job of another queue does one idle worker of this node look once, or, when it finds none
//   while graphile-worker's own completion (not yet written) may still have held the queue, a
//   moment later (and once more a second later). A run that
//   completed its job itself (finish_run) freed the queue before its worker looked. Waking one
//   after every completion instead cost a get_job per run that found nothing (bench:queue: a
//   fifth of the throughput);
// - what was announced while the node was not listening (before its LISTEN was first set up —
//   the cron backfill of a starting node, say — or while the connection was down: an outage, a
//   server restart, the connections cut): each time graphile-worker listens, every worker
//   looks once.

/** graphile-worker's back-off after failed attempt number `attempts` (its fail_job SQL). */
export function retryDelayMs(attempts: number): number {
  return Math.exp(Math.min(attempts, 10)) * 1000;
}

export interface Wakeups {
  stop(): void;
}

/** Where a failed job stands: due in `dueInMs` (≤ 0: now), still locked (its failure not yet written), or gone. */
const RETRY_STATE = `
select locked_at is not null as locked, greatest(0, extract(epoch from run_at - now()) * 1000)::float8 as due_in_ms
from graphile_worker.jobs where id = $1 and attempts < max_attempts`;
/** While the failure is not written yet, look again this often. */
const STILL_FAILING_RECHECK_MS = 1000;
/** A failure that takes longer than this to write is left to the next poll. */
const MAX_RECHECKS = 120;
/** When, after a worker found nothing, its own completion should have freed its queue (a second look for a slow one). */
const COMPLETION_LANDS_MS = [100, 1000];

export function wakeIdleWorkers(options: {
  events: WorkerEvents;
  workerPool: () => WorkerPool | undefined;
  concurrency: number;
  db: Queryable;
  logger: Logger;
}): Wakeups {
  const { events, workerPool, concurrency, db, logger } = options;
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;
  const after = (ms: number, action: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!stopped) action();
    }, ms);
    timer.unref();
    timers.add(timer);
  };
  const wakeWhenDue = (jobId: string, rechecks: number) => {
    db.query<{ locked: boolean; due_in_ms: number }>(RETRY_STATE, [jobId]).then(
      ({ rows: [job] }) => {
        if (!job) return; // done, failed for good, or deleted: nothing to wake for
        if (job.locked) {
          if (rechecks < MAX_RECHECKS) after(STILL_FAILING_RECHECK_MS, () => wakeWhenDue(jobId, rechecks + 1));
        } else if (job.due_in_ms > 0) after(job.due_in_ms + 50, () => wakeWhenDue(jobId, rechecks));
        else workerPool()?.nudge(1);
      },
      (error: unknown) => {
        // The database is away: the listener's reconnection wakes every worker once it is back.
        logger.debug({ jobId, err: errorMessage(error) }, "could not read a failed job's retry time");
      },
    );
  };
  const onError = ({ job }: { job: { id: string; attempts: number; max_attempts: number } }) => {
    if (job.attempts >= job.max_attempts) return;
    after(retryDelayMs(job.attempts) + 50, () => wakeWhenDue(job.id, 0));
  };
  const onListening = () => workerPool()?.nudge(concurrency);
  // Per worker: the queue of the job it just completed, until it has looked for its next job,
  // and whether that queue may still have been held when it looked (not completed in the run).
  const freed = new Map<string, { queue: number; mayBeHeld: boolean }>();
  const onComplete = ({ worker, job }: { worker: { workerId: string }; job: { job_queue_id: number | null } }) => {
    if (job.job_queue_id === null) return;
    freed.set(worker.workerId, { queue: job.job_queue_id, mayBeHeld: !wasCompletedInRun(job) });
  };
  const onStart = ({ worker, job }: { worker: { workerId: string }; job: { job_queue_id: number | null } }) => {
    const left = freed.get(worker.workerId);
    if (left === undefined) return;
    freed.delete(worker.workerId);
    if (job.job_queue_id !== left.queue) workerPool()?.nudge(1);
  };
  // graphile-worker sends its completion without waiting for it, and its worker looks for the
  // next job meanwhile: give the completion a moment to land, so that the worker woken finds
  // the queue free (a look that finds nothing costs one get_job).
  const onEmpty = ({ worker }: { worker: { workerId: string } }) => {
    const left = freed.get(worker.workerId);
    if (left === undefined) return;
    freed.delete(worker.workerId);
    if (left.mayBeHeld) for (const ms of COMPLETION_LANDS_MS) after(ms, () => workerPool()?.nudge(1));
  };
  events.on("job:error", onError);
  events.on("job:complete", onComplete);
  events.on("job:start", onStart);
  events.on("worker:getJob:empty", onEmpty);
  events.on("pool:listen:success", onListening);
  return {
    stop() {
      stopped = true;
      events.off("job:error", onError);
      events.off("job:complete", onComplete);
      events.off("job:start", onStart);
      events.off("worker:getJob:empty", onEmpty);
      events.off("pool:listen:success", onListening);
      freed.clear();
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
