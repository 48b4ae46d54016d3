import type { Queryable } from "../db/pool.ts";
import { SchedulerError } from "../errors.ts";

export interface FinishedRun {
  id: string;
  status: "success" | "failed" | "abandoned";
  error: string | null;
  items_processed: string;
  items_failed: string;
  message: string | null;
  duration_ms: number | null;
  details: unknown;
}

/**
 * Waits for the first finished attempt of a graphile job after history row `afterRunId` (the
 * job's newest row when it was queued: enqueueRun's lastRunId; a job key can hand back a job
 * whose earlier attempts are recorded); fails after timeoutMs.
 */
export async function waitForRun(db: Queryable, jobId: string, afterRunId: string, timeoutMs: number, pollMs = 200): Promise<FinishedRun> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rows } = await db.query<FinishedRun>(
      `select id, status, error, items_processed, items_failed, message, duration_ms, details
       from scheduler.job_runs where job_id = $1 and id > $2 and status <> 'running' order by id limit 1`,
      [jobId, afterRunId],
    );
    if (rows[0]) return rows[0];
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  throw new SchedulerError("wait_timeout", `job ${jobId} did not finish within ${Number((timeoutMs / 1000).toFixed(3))} s`, {
    hint: "check that a scheduler node is running (`systemprompt-scheduler status`), or raise --timeout",
    exitCode: 3,
  });
}
