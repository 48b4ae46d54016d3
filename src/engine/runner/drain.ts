import type { Runner, WorkerPool } from "graphile-worker";
import type { Queryable } from "../db/pool.ts";
import type { Logger } from "../log.ts";

/** After cancelling, how long jobs get to notice before the worker pool is forced down. */
const CANCEL_WAIT_MS = 10_000;
/** The same, once someone asked to hurry (a second signal). */
const HURRIED_CANCEL_WAIT_MS = 2_000;

/**
 * Stops the worker: no new jobs; running jobs finish within `graceMs`. Past that (or at once
 * when `hurry` aborts: a second signal) their SQL is cancelled, each run fails with a clear
 * error and graphile-worker releases it for a retry; a job that ignores even that is failed by
 * a forceful shutdown and its run marked abandoned. Either way no finished job stays locked.
 */
export async function drainWorker(options: {
  runner: Runner;
  workerPool: () => WorkerPool | undefined;
  cancelJobs: AbortController;
  graceMs: number;
  hurry: AbortSignal;
  db: Queryable;
  nodeId: string;
  logger: Logger;
}): Promise<void> {
  const { logger, hurry } = options;
  logger.info({ graceMs: options.graceMs }, "stopping: letting running jobs finish");
  const graceful = options.runner.stop().then(
    () => "stopped" as const,
    (error: unknown) => {
      logger.warn({ err: error }, "graceful stop reported an error");
      return "stopped" as const;
    },
  );
  const within = async (ms: number, interruptible: boolean) => {
    let timer: NodeJS.Timeout | undefined;
    let onHurry: (() => void) | undefined;
    const waits: Promise<"stopped" | "timeout" | "hurry">[] = [graceful, new Promise((resolve) => (timer = setTimeout(() => resolve("timeout"), ms)))];
    if (interruptible) waits.push(new Promise((resolve) => (hurry.aborted ? resolve("hurry") : hurry.addEventListener("abort", (onHurry = () => resolve("hurry"))))));
    const outcome = await Promise.race(waits);
    clearTimeout(timer);
    if (onHurry) hurry.removeEventListener("abort", onHurry);
    return outcome;
  };
  const grace = await within(options.graceMs, true);
  if (grace === "stopped") return;
  logger.warn({ graceMs: options.graceMs, hurried: grace === "hurry" }, "cancelling the jobs still running (they will be retried)");
  options.cancelJobs.abort();
  if ((await within(hurry.aborted ? HURRIED_CANCEL_WAIT_MS : CANCEL_WAIT_MS, false)) === "stopped") return;
  logger.error("jobs ignored cancellation; forcing the worker pool down");
  await Promise.resolve(options.workerPool()?.forcefulShutdown("node shutdown: grace period over")).catch(() => {});
  await options.db
    .query(
      "select scheduler.abandon_runs(array(select id from scheduler.job_runs where node_id = $1 and status = 'running'), 'cancelled at node shutdown: the job ignored cancellation and the worker pool was forced down')",
      [options.nodeId],
    )
    .catch(() => {});
}
