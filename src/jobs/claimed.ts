import type { Queryable } from "../db/pool.ts";
import { errorMessage } from "../errors.ts";
import { showRunningAfterAWhile, type Claim, type RunRecord } from "../history/runs.ts";
import type { Logger } from "../log.ts";
import type { JobRuntime } from "./runtime.ts";

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
  runtime.events.emit("job:start", { ...base, runId: run.id });
  return { run, stopShowingRunning };
}
