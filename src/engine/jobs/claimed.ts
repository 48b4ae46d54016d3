import type { Queryable } from "../db/pool.ts";
import { errorMessage } from "../errors.ts";
import { recordOutcome, runInProgressAt, showRunningAfterAWhile, type Claim, type RunRecord, type RunStart } from "../history/runs.ts";
import type { Logger } from "../log.ts";
import type { JobRuntime } from "./runtime.ts";

/**
 * `?overlap=skip`: whether this tick is skipped because a run was in progress at it (the
 * claim found the lock taken, or the history shows a run spanning the tick, one this run
 * waited for in the queue). A skipped tick gets a 'skipped' history row (reason 'overlap')
 * and is announced as job:skipped. The caller releases the lock if the claim took it.
 */
export async function overlapSkip(
  db: Queryable,
  claim: Claim,
  start: RunStart,
  scope: { task: string } | { jobName: string },
  tick: Date,
  logger: Logger,
  runtime: JobRuntime,
  base: Record<string, unknown>,
): Promise<boolean> {
  const inProgress = claim.locked ? await runInProgressAt(db, scope, tick) : "(holds the lock)";
  if (inProgress === null) return false;
  const message = `skipped: a run of '${"task" in scope ? scope.task : scope.jobName}' was in progress at this tick (${tick.toISOString()}) and the entry has ?overlap=skip`;
  const run: RunRecord = claim.run ?? { ...start, id: null, startedAt: null };
  const runId = await recordOutcome(db, run, {
    status: "skipped",
    result: { itemsProcessed: 0, itemsFailed: 0, message, details: { reason: "overlap", inProgress: claim.locked ? inProgress : null } },
  });
  logger.info({ inProgress }, "tick skipped: a run was in progress (overlap=skip)");
  runtime.events.emit("job:skipped", { ...base, runId, reason: "overlap" });
  return true;
}

/**
 * What every wrapper does with a claim: a paused job's run is skipped (logged, announced as
 * job:skipped, no history row); a started one is announced as job:start and shown as
 * 'running' once it has gone on a while (call `stopShowingRunning` when it ends).
 */
export function beginClaimedRun(
  claim: Claim,
  db: Queryable,
  logger: Logger,
  runtime: JobRuntime,
  base: Record<string, unknown>,
): { run: RunRecord; stopShowingRunning: () => void } | null {
  if (claim.pausedAs !== null) {
    logger.info({ pausedAs: claim.pausedAs }, "job is paused; run skipped");
    runtime.events.emit("job:skipped", { ...base, reason: "paused" });
    return null;
  }
  const run = claim.run!;
  const stopShowingRunning = showRunningAfterAWhile(db, run, (error) => logger.warn({ error: errorMessage(error) }, "could not show the run as running"));
  // scheduledFor and startedAt (database time) give the run's lateness (src/engine/http/node-metrics.ts).
  runtime.events.emit("job:start", { ...base, runId: run.id, scheduledFor: run.scheduledFor, startedAt: run.startedAt, jitterMs: run.jitterMs ?? null });
  return { run, stopShowingRunning };
}
