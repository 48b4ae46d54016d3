import type { JobHelpers, Task } from "graphile-worker";
import { errorMessage, SchedulerError, stackOf } from "../errors.ts";
import { claimRun, recordOutcome, recordSuccessAndFinish } from "../history/runs.ts";
import { traceAttempt, type AttemptSpan } from "./attempt-span.ts";
import { beginClaimedRun, overlapSkip } from "./claimed.ts";
import { splitPayload, type SplitPayload } from "./payload.ts";
import type { JobRuntime } from "./runtime.ts";

// A task file may export a plain graphile-worker task function instead of a defineJob job.
// It still gets what every run needs to be seen: the pause check, a history row (so
// `run --wait`, `history` and `scheduled_jobs` see it) and a trace span. It has no payload
// schema, no timeout and no run lock: graphile-worker's own semantics, as written. It is
// handed the payload as queued (`_cron` included), less `_trace`.

export function wrapPlainTask(name: string, task: Task, runtime: JobRuntime): Task {
  return async (rawPayload: unknown, helpers: JobHelpers) => {
    const split = splitPayload(rawPayload);
    const jobName = split.schedule ?? name;
    return traceAttempt(name, jobName, split, helpers, runtime.nodeId, (span) => runPlainAttempt(name, task, split, jobName, helpers, runtime, span));
  };
}

async function runPlainAttempt(name: string, task: Task, split: SplitPayload, jobName: string, helpers: JobHelpers, runtime: JobRuntime, span: AttemptSpan): Promise<void | unknown[]> {
  const { scheduledFor, overlap, jitterMs, queued } = split;
  const base = { jobName, task: name, jobId: helpers.job.id, nodeId: runtime.nodeId };
  const logger = runtime.logger.child({ job: jobName, task: name, jobId: helpers.job.id, attempt: helpers.job.attempts });
  const start = { ...base, attempt: helpers.job.attempts, scheduledFor, jitterMs, dryRun: false, payload: queued };
  const claim = await claimRun(helpers, null, start);
  // No run lock here: `?overlap=skip` looks at the entry's own runs.
  if (overlap === "skip" && scheduledFor !== null && claim.pausedAs === null && (await overlapSkip(helpers, claim, start, { jobName }, scheduledFor, logger, runtime, base))) return span.skipped("overlap");
  const begun = beginClaimedRun(claim, helpers, logger, runtime, base);
  if (!begun) return span.skipped("paused");
  const { run, stopShowingRunning } = begun;
  const runId = run.id!;
  span.annotate({ runId });
  const started = Date.now();
  try {
    const value = await task(queued, helpers);
    stopShowingRunning();
    const result = { itemsProcessed: 0, itemsFailed: 0, message: "completed" };
    // Completes the graphile-worker job too (sql/engine/010), so its queue is free before the
    // worker asks for its next job: idle workers poll only every 30 s.
    try {
      await recordSuccessAndFinish(helpers, run, null, helpers.job.locked_by, result);
    } catch (error) {
      // The task succeeded; only the bookkeeping failed. Recorded as a success once more
      // (graphile-worker completes the job when the task returns), never re-run as a failure.
      logger.warn({ error: errorMessage(error) }, "recording the task's success failed; retrying once");
      await recordOutcome(helpers, run, { status: "success", result }).catch((e: unknown) => logger.error({ err: e }, "could not record the successful run"));
    }
    const durationMs = Date.now() - started;
    logger.info({ durationMs }, "plain task completed");
    runtime.events.emit("job:success", { ...base, runId, result, durationMs });
    return value;
  } catch (error) {
    stopShowingRunning();
    const message = errorMessage(error);
    await recordOutcome(helpers, run, { status: "failed", error: message }).catch((e: unknown) => logger.error({ err: e }, "could not record the failed run"));
    const durationMs = Date.now() - started;
    // The one line with the failure's stack (graphile-worker's own report of it is debug: log.ts).
    logger.error({ error: message, durationMs, ...(error instanceof SchedulerError ? {} : { stack: stackOf(error) }) }, "job failed");
    runtime.events.emit("job:failed", { ...base, runId, error: message, permanent: false, durationMs });
    throw error;
  }
}
