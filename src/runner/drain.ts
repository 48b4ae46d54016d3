import type { Runner, WorkerPool } from "graphile-worker";
import type { Queryable } from "../db/pool.ts";
import type { Logger } from "../log.ts";

/** After cancelling, how long jobs get to notice before the worker pool is forced down. */
const CANCEL_WAIT_MS = 10_000;

/**
 * Stops the worker: no new jobs; running jobs finish within `graceMs`. Past that their SQL
 * is cancelled (each run fails with a clear error and graphile-worker releases it for a
 * retry); a job that ignores even that is failed by a forceful shutdown and its run marked
 * abandoned. Either way no finished job stays locked.
 */
export async function drainWorker(options: {
  runner: Runner;
  workerPool: () => WorkerPool | undefined;
  cancelJobs: AbortController;
  graceMs: number;
  db: Queryable;
  nodeId: string;
  logger: Logger;
}): Promise<void> {
  const { logger } = options;
  logger.info({ graceMs: options.graceMs }, "stopping: letting running jobs finish");
  const graceful = options.runner.stop().then(
    () => "stopped" as const,
    (error: unknown) => {
      logger.warn({ err: error }, "graceful stop reported an error");
      return "stopped" as const;
    },
  );
  const within = async (ms: number) => {
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([graceful, new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), ms)))]);
    clearTimeout(timer);
    return outcome;
  };
  if ((await within(options.graceMs)) === "stopped") return;
  logger.warn({ graceMs: options.graceMs }, "running jobs did not finish in time; cancelling them (they will be retried)");
  options.cancelJobs.abort();
  if ((await within(CANCEL_WAIT_MS)) === "stopped") return;
  logger.error("jobs ignored cancellation; forcing the worker pool down");
  await Promise.resolve(options.workerPool()?.forcefulShutdown("node shutdown: grace period over")).catch(() => {});
  await options.db
    .query(
      "select scheduler.abandon_runs(array(select id from scheduler.job_runs where node_id = $1 and status = 'running'), 'cancelled at node shutdown: the job ignored cancellation and the worker pool was forced down')",
      [options.nodeId],
    )
    .catch(() => {});
}
