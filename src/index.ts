// The library API: embed the scheduler in an application and add its own jobs next to ours
// (the original crate's `Job` trait and "any crate can register jobs").
export { defineJob, definitionOf, type DefinedJob, type JobDefinition, type PayloadOf } from "./jobs/define.ts";
export type { JobContext } from "./jobs/types.ts";
export type { JobResult, JobStatus } from "./history/types.ts";
export { startScheduler, type SchedulerHandle, type SchedulerOptions, type RunJobOptions, type QueuedRun } from "./runner/start.ts";
export type { FinishedRun } from "./history/wait.ts";
export { SchedulerError, PermanentJobError } from "./errors.ts";
export { repeatInBatches } from "./db/batch.ts";
export { migrate } from "./db/migrate.ts";
export { loadConfig, type Config } from "./config.ts";
export { cleanupInactiveSessions } from "./jobs/cleanup_inactive_sessions/index.ts";
export * from "./security/index.ts";

/** A row of the public `scheduled_jobs` view. */
export interface ScheduledJob {
  job_name: string;
  task: string;
  schedule: string;
  enabled: boolean;
  last_run: Date | null;
  next_run: Date | null;
  last_status: "running" | "success" | "failed" | "abandoned" | null;
  last_error: string | null;
  run_count: string;
  description: string | null;
  last_duration_ms: number | null;
  success_count: string;
  failure_count: string;
  paused_at: Date | null;
  payload: Record<string, unknown> | null;
  /** The paused name (the entry's identifier, or its task) while paused. */
  paused_as: string | null;
  paused_by: string | null;
  pause_reason: string | null;
}
