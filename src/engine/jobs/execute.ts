import type { JobHelpers } from "graphile-worker";
import { cancelRunningQuery } from "../db/cancel.ts";
import type { Queryable } from "../db/pool.ts";
import { errorMessage, PermanentJobError, SchedulerError, stackOf } from "../errors.ts";
import { deferLockedJob, makeAttemptFinal, markCompletedInRun } from "../graphile/internals.ts";
import { claimRun, markReturned, recordOutcome, recordSuccessAndFinish, releaseRunLock, releaseRunLockSurely, type Claim, type RunStart } from "../history/runs.ts";
import { traceAttempt, type AttemptSpan } from "./attempt-span.ts";
import { beginClaimedRun, overlapSkip } from "./claimed.ts";
import type { DefinedJob } from "./types.ts";
import { describePayloadErrors, splitPayload, type SplitPayload } from "./payload.ts";
import type { JobRuntime } from "./runtime.ts";

// The one wrapper every defined job runs through: payload validation, pause check, one
// run at a time per task across all nodes, a timeout that cancels the job's SQL, a
// history row, logs, events and a trace span.

/**
 * Thrown when another run holds the job's lock: graphile-worker then puts the job back in
 * the queue (the attempt it was charged is given back, see deferLockedJob), so the waiting
 * run holds no worker and no connection. Logged at debug level, not as a failure.
 */
export class RunDeferred extends SchedulerError {
  constructor(jobName: string) {
    super("run_deferred", `another run of '${jobName}' holds its lock; this run waits in the queue and starts when that one ends`);
    this.name = "RunDeferred";
  }
}

/** How long after its deadline (abort signal, SQL cancelled) a run that has not returned counts as stuck. */
export const STUCK_AFTER_MS = 1000;

/** 600000 → "10m", 90000 → "90s", 1500 → "1500 ms": a timeout as people write it. */
function formatMs(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms} ms`;
}

export async function runDefinedJob(job: DefinedJob, rawPayload: unknown, helpers: JobHelpers, runtime: JobRuntime): Promise<void> {
  const split = splitPayload(rawPayload);
  const jobName = split.schedule ?? job.name;
  await traceAttempt(job.name, jobName, split, helpers, runtime.nodeId, (span) => runAttempt(job, split, jobName, helpers, runtime, span));
}

async function runAttempt(job: DefinedJob, split: SplitPayload, jobName: string, helpers: JobHelpers, runtime: JobRuntime, span: AttemptSpan): Promise<void> {
  const { fields, scheduledFor, overlap, jitterMs } = split;
  const logger = runtime.logger.child({ job: jobName, task: job.name, jobId: helpers.job.id, attempt: helpers.job.attempts });
  const base = { jobName, task: job.name, jobId: helpers.job.id, nodeId: runtime.nodeId };
  const runStart = { ...base, attempt: helpers.job.attempts, scheduledFor, jitterMs };
  // `?overlap=skip`: a tick (not a manual run) that finds a run in progress is recorded and dropped.
  const skipsOverlap = overlap === "skip" && scheduledFor !== null;

  const parsed = job.schema.safeParse(fields);
  if (!parsed.success) {
    const message = describePayloadErrors(jobName, parsed.error);
    const runId = await recordOutcome(helpers, { ...runStart, dryRun: false, payload: fields, id: null, startedAt: null }, { status: "failed", error: message });
    span.annotate({ runId });
    // Retrying cannot fix a payload: make this attempt the last one.
    await makeAttemptFinal(helpers);
    logger.error({ error: message }, "job failed permanently: invalid payload");
    runtime.events.emit("job:failed", { ...base, runId, error: message, permanent: true });
    throw new PermanentJobError(message);
  }
  const payload = parsed.data as Record<string, unknown> & { enforce: boolean };
  span.annotate({ dryRun: !payload.enforce });
  const lockKey = job.exclusive ? `systemprompt-scheduler:job:${job.name}` : null;

  await helpers.withPgClient(async (client) => {
    const start = { ...runStart, dryRun: !payload.enforce, payload };
    const claim = skipsOverlap ? await claimRun(client, lockKey, { ...start, jobId: null }) : await claimOrDefer(client, lockKey, start, helpers.job.id, jobName);
    if (claim.pausedAs !== null && claim.locked) await releaseRunLock(client, lockKey);
    if (skipsOverlap && claim.pausedAs === null) {
      const skipped = await overlapSkip(client, claim, start, job.exclusive ? { task: job.name } : { jobName }, scheduledFor, logger, runtime, base);
      if (skipped) {
        if (claim.locked) await releaseRunLock(client, lockKey);
        span.skipped("overlap");
        return;
      }
    }
    const begun = beginClaimedRun(claim, helpers, logger, runtime, base);
    if (!begun) return span.skipped("paused");
    const { run, stopShowingRunning } = begun;
    const runId = run.id!;
    span.annotate({ runId });
    const controller = new AbortController();
    const cancel = (reason: SchedulerError) => {
      if (controller.signal.aborted) return;
      controller.abort(reason);
      cancelRunningQuery(client);
    };
    // The deadline: the abort signal fires and the run's SQL is cancelled. A function that has
    // not returned soon after is stuck (JavaScript cannot be stopped from outside): its run is
    // recorded failed then, it keeps its worker and the task's lock until it really returns (no
    // overlap), and it shows as stuck (history details, job:stuck, scheduler_job_runs_stuck).
    let stuck: Promise<unknown> | null = null;
    let stuckTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      cancel(new SchedulerError("job_timeout", `job '${jobName}' exceeded its timeout of ${formatMs(job.timeoutMs)} and was cancelled`));
      stuckTimer = setTimeout(() => {
        const error = `timed out after ${formatMs(job.timeoutMs)}; the function did not stop`;
        logger.error({ timeoutMs: job.timeoutMs }, `${error}: it holds its worker and the task's lock until it returns`);
        runtime.events.emit("job:stuck", { ...base, runId });
        stuck = recordOutcome(helpers, run, { status: "failed", error, result: { itemsProcessed: 0, itemsFailed: 0, message: error, details: { stuck: true, timeoutMs: job.timeoutMs } } })
          .catch((e: unknown) => logger.error({ err: e }, "could not record the stuck run"));
      }, STUCK_AFTER_MS);
    }, job.timeoutMs);
    const onShutdown = () => cancel(new SchedulerError("job_cancelled", `job '${jobName}' was cancelled: its node is shutting down and the grace period ended; it will be retried`));
    runtime.cancelAll?.addEventListener("abort", onShutdown);
    if (runtime.cancelAll?.aborted) onShutdown();
    const db: Queryable = {
      async query(text, values) {
        if (controller.signal.aborted) throw controller.signal.reason;
        try {
          return await client.query(text, values);
        } catch (error) {
          if (controller.signal.aborted) throw controller.signal.reason;
          throw error;
        }
      },
    };
    const lockReleaseFailed = (error: unknown) => logger.warn({ error: errorMessage(error) }, "releasing the job's lock failed; its connection is closed instead, which releases it");
    const started = Date.now();
    try {
      const result = await job.run({
        payload,
        enforce: payload.enforce,
        db,
        logger,
        signal: controller.signal,
        jobName,
        task: job.name,
        jobId: helpers.job.id,
        attempt: helpers.job.attempts,
        scheduledFor,
        nodeId: runtime.nodeId,
      });
      clearTimeout(timer);
      clearTimeout(stuckTimer);
      stopShowingRunning();
      // Cancelled (its deadline, or its node's shutdown) yet returned as if done: not a success.
      if (controller.signal.aborted) throw controller.signal.reason;
      try {
        const { completed } = await recordSuccessAndFinish(client, run, lockKey, helpers.job.locked_by, result);
        if (completed) {
          runtime.finishedJobs?.add(helpers.job.id);
          markCompletedInRun(helpers.job);
        }
      } catch (error) {
        // The work is done; only its last statement failed (a broken connection, a late
        // cancel, a statement timeout). Record the success on the pool, so the run is not
        // re-run as a failure, and make sure the lock does not outlive the run.
        logger.warn({ error: errorMessage(error) }, "recording the run's success on its own connection failed; retrying on the pool");
        await recordOutcome(helpers, run, { status: "success", result });
        await releaseRunLockSurely(client, lockKey, lockReleaseFailed);
      }
      const durationMs = Date.now() - started;
      logger.info({ itemsProcessed: result.itemsProcessed, itemsFailed: result.itemsFailed, durationMs, dryRun: !payload.enforce, details: result.details }, result.message);
      runtime.events.emit("job:success", { ...base, runId, result, durationMs });
    } catch (error) {
      clearTimeout(timer);
      clearTimeout(stuckTimer);
      stopShowingRunning();
      const message = errorMessage(error);
      // On the pool: this run's own connection may be the thing that broke.
      await recordOutcome(helpers, run, { status: "failed", error: message }).catch((e: unknown) => logger.error({ err: e }, "could not record the failed run"));
      await releaseRunLockSurely(client, lockKey, lockReleaseFailed);
      const durationMs = Date.now() - started;
      // The one line with the failure's stack (graphile-worker's own report of it is debug: log.ts).
      logger.error({ error: message, durationMs, ...(error instanceof SchedulerError ? {} : { stack: stackOf(error) }) }, "job failed");
      runtime.events.emit("job:failed", { ...base, runId, error: message, permanent: false, durationMs });
      throw error;
    } finally {
      runtime.cancelAll?.removeEventListener("abort", onShutdown);
      if (stuck) {
        await stuck;
        await markReturned(helpers, runId).catch((e: unknown) => logger.warn({ err: e }, "could not record that the stuck run returned"));
        logger.warn({ durationMs: Date.now() - started }, "the stuck run returned at last; its worker and the task's lock are free again");
        runtime.events.emit("job:unstuck", { ...base, runId });
      }
    }
  });
}

/**
 * One run of a task at a time, on any node: cron entries and our CLI also put a task's runs
 * in one graphile-worker queue, but a bare `add_job()` from SQL does not, so the session lock
 * is what guarantees it. A run that finds the lock taken does not wait in its worker: it is
 * listed as a waiter (by the claim), tries once more (the holder may have just finished and
 * missed it), then goes back to the queue until the holder's release wakes it.
 */
async function claimOrDefer(client: Queryable, lockKey: string | null, run: RunStart, jobId: string, jobName: string): Promise<Claim> {
  for (let attempt = 0; ; attempt++) {
    const claim = await claimRun(client, lockKey, run);
    if (claim.locked || claim.pausedAs !== null) return claim;
    if (attempt === 1) {
      await deferLockedJob(client, jobId, lockKey!);
      throw new RunDeferred(jobName);
    }
  }
}
