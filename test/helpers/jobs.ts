import { EventEmitter } from "node:events";
import { runOnce, type TaskList } from "graphile-worker";
import type { DefinedJob } from "../../src/engine/jobs/define.ts";
import type { JobResult } from "../../src/engine/history/types.ts";
import type { JobRuntime } from "../../src/engine/jobs/runtime.ts";
import type { Pool } from "../../src/engine/db/pool.ts";
import { graphileLoggerFor } from "../../src/engine/log.ts";
import { testLogger } from "./db.ts";

/**
 * Runs a job's logic directly on one connection, with its payload validated by
 * the job's own schema: for testing what a job does to the data.
 */
export async function runJobLogic(pool: Pool, job: DefinedJob, payload: Record<string, unknown> = {}): Promise<JobResult> {
  const parsed = job.schema.parse(payload) as Record<string, unknown> & { enforce: boolean };
  const client = await pool.connect();
  try {
    return await job.run({
      payload: parsed,
      enforce: parsed.enforce,
      db: client,
      logger: testLogger,
      signal: new AbortController().signal,
      jobName: job.name,
      task: job.name,
      jobId: null,
      attempt: 1,
      scheduledFor: null,
      nodeId: "test",
    });
  } finally {
    client.release();
  }
}

export function testRuntime(nodeId = "test-node"): JobRuntime {
  return { logger: testLogger, nodeId, events: new EventEmitter() };
}

/**
 * Queues the given jobs and drains the queue once through graphile-worker with
 * our wrapper (history rows, validation, locks): for testing the whole path.
 */
export async function runThroughWorker(
  pool: Pool,
  jobs: DefinedJob[],
  queue: { task: string; payload?: unknown }[],
  runtime: JobRuntime = testRuntime(),
): Promise<void> {
  const taskList: TaskList = Object.fromEntries(jobs.map((job) => [job.name, job.bind(runtime)]));
  for (const item of queue) {
    await pool.query("select graphile_worker.add_job($1, $2::json)", [item.task, JSON.stringify(item.payload ?? {})]);
  }
  await runOnce({ pgPool: pool, taskList, concurrency: 1, logger: graphileLoggerFor(testLogger), preset: { worker: { completeJobBatchDelay: 0, failJobBatchDelay: 0 } } });
}
