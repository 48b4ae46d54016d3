// The library API: embed the scheduler in an application and add its own jobs next to ours
// (the original crate's `Job` trait and "any crate can register jobs").
export { defineJob, definitionOf, type DefinedJob, type JobDefinition, type PayloadOf } from "./engine/jobs/define.ts";
export type { JobContext } from "./engine/jobs/types.ts";
export type { JobResult, JobStatus } from "./engine/history/types.ts";
export { startScheduler, migrate, runtimeGrantsSql, adminGrantsSql, type SchedulerOptions, type MigrateOptions } from "./scheduler.ts";
export type { MigrateResult } from "./engine/db/migrate.ts";
export type { AdoptionReport } from "./engine/db/adoption.ts";
export type { SchedulerHandle, RunJobOptions, QueuedRun } from "./engine/runner/options.ts";
export type { SchedulerPack, PackNodeContext, PackNodeLoop, AdoptedTable } from "./engine/pack.ts";
export type { FinishedRun } from "./engine/history/wait.ts";
export { SchedulerError, PermanentJobError } from "./engine/errors.ts";
export { repeatInBatches } from "./engine/db/batch.ts";
export { loadConfig, type Config } from "./config.ts";
// zod is part of the API (payload schemas): one copy, the one defineJob checks with.
export { z } from "zod";
// The platform pack (on by default; `platform: false` leaves it out) and its reusable parts.
export { platformPack, type PlatformOptions } from "./platform/index.ts";
export { cleanupInactiveSessions } from "./platform/jobs/cleanup_inactive_sessions/index.ts";
export * from "./platform/security/index.ts";

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
  /** Runs: ticks and manual runs, each once however many attempts it took (bigint, as pg reads it). */
  run_count: string;
  description: string | null;
  last_duration_ms: number | null;
  /** Attempts that succeeded, and attempts that failed or were abandoned. */
  success_count: string;
  failure_count: string;
  paused_at: Date | null;
  payload: Record<string, unknown> | null;
  /** The paused name (the entry's identifier, or its task) while paused. */
  paused_as: string | null;
  paused_by: string | null;
  pause_reason: string | null;
  timezone: string;
  overlap: "queue_one" | "skip" | "allow";
  jitter_ms: number;
  skipped_count: string;
  /** A tick has waited longer than grace_ms (plus the jitter) with no run started, no later tick, and not recorded missed. */
  late: boolean;
  late_since: Date | null;
  grace_ms: number;
  missed_count: string;
  /** Whether the last run was a dry run (it changed nothing); null before the first. */
  last_run_dry_run: boolean | null;
  /** When the last success that did the entry's work finished (a dry run only for an entry whose own payload is one). */
  last_success: Date | null;
  /** Every attempt of every run (a retry is one more). */
  attempt_count: string;
}
