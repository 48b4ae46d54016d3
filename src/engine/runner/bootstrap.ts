import type { Queryable } from "../db/pool.ts";
import { readSql } from "../db/sql-file.ts";
import { SchedulerError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { enqueueRun, requestForTask } from "./run-request.ts";

const claimBootstrap = readSql(import.meta.url, "bootstrap.sql");

/** Refuses to start on a bootstrap job that has no task, before anything runs. */
export function checkBootstrapJobs(names: readonly string[], knownTasks: ReadonlySet<string>): void {
  for (const name of names) {
    if (!knownTasks.has(name)) {
      throw new SchedulerError("unknown_bootstrap_job", `bootstrap job '${name}' has no task`, {
        hint: `set SCHEDULER_BOOTSTRAP_JOBS to names among: ${[...knownTasks].sort().join(", ")} (or empty for none)`,
        exitCode: 2,
      });
    }
  }
}

/** Queues each bootstrap job once, unless another node queued it within the last minute. */
export async function queueBootstrapJobs(db: Queryable, names: readonly string[], nodeId: string, logger: Logger): Promise<void> {
  for (const name of names) {
    const { rows } = await db.query(claimBootstrap, [name, nodeId]);
    if (rows.length === 0) continue;
    const { jobId } = await enqueueRun(db, requestForTask(name));
    logger.info({ job: name, jobId }, "bootstrap job queued");
  }
}
