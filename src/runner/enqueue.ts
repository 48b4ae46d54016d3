import type { Queryable } from "../db/pool.ts";

/**
 * Queues a run the way the crontab does: in the task's queue (runs never overlap) and
 * under a job key, so repeated requests while one waits replace it rather than pile up.
 */
export async function enqueueJob(db: Queryable, task: string, payload: Record<string, unknown> = {}): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    "select id from graphile_worker.add_job($1, $2::json, queue_name => $1, job_key => $3, job_key_mode => 'replace', max_attempts => 3)",
    [task, JSON.stringify(payload), `run:${task}`],
  );
  return rows[0]!.id;
}
