import type { EventEmitter } from "node:events";
import type { Pool } from "../db/pool.ts";
import type { CrontabEntry } from "../crontab/parse.ts";
import type { DefinedJob } from "../jobs/define.ts";
import type { FinishedRun } from "../history/wait.ts";
import type { Logger } from "../log.ts";
import type { ClusterSettings } from "../cluster/node.ts";
import type { ServiceReconcilerOptions } from "../orchestration/loop.ts";

// What startScheduler takes and gives back.

export interface SchedulerOptions {
  /** An existing pool (the application's); otherwise `connectionString` (or DATABASE_URL) is used. */
  pool?: Pool;
  connectionString?: string;
  /** Job definitions to run beside (or instead of) the task files. */
  jobs?: DefinedJob[];
  /** Folder of task files; default this package's tasks/. `null` for none. */
  taskDirectory?: string | null;
  /** Crontab text. When given, `crontabPath` is not read or watched. */
  crontab?: string;
  /** Crontab file, watched for edits; default SCHEDULER_CRONTAB. */
  crontabPath?: string;
  concurrency?: number;
  host?: string;
  nodeId?: string;
  logger?: Logger;
  /** Jobs queued once when the node starts; default SCHEDULER_BOOTSTRAP_JOBS. */
  bootstrapJobs?: string[];
  historyRetentionDays?: number;
  /** How long stop() lets running jobs finish before it cancels them. */
  shutdownGraceMs?: number;
  crontabPollMs?: number;
  heartbeatMs?: number;
  /** Cluster timing; defaults from SCHEDULER_HEARTBEAT_MS, _NODE_DEAD_AFTER_MS, _RESCUE_INTERVAL_MS, SCHEDULER_DB_GIVE_UP_MS. */
  cluster?: Partial<ClusterSettings>;
  /**
   * The reconciler of this host's services (src/orchestration): on unless false or
   * SCHEDULER_RECONCILE_SERVICES=false; an object overrides its options.
   */
  services?: boolean | Partial<ServiceReconcilerOptions>;
  /** Extra graphile-worker `preset.worker` options (e.g. localQueue). */
  workerPreset?: Record<string, unknown>;
}

export interface RunJobOptions {
  wait?: boolean;
  timeoutMs?: number;
}

export interface QueuedRun {
  /** graphile-worker's job id. */
  jobId: string;
  /** What the run is recorded as: the entry's identifier, or the task. */
  jobName: string;
  task: string;
  /** With `wait`: the finished run (its history row). */
  run?: FinishedRun;
}

export interface SchedulerHandle {
  nodeId: string;
  host: string;
  /** job:start, job:success, job:failed, job:skipped, crontab:reloaded, stopped. */
  events: EventEmitter;
  pool: Pool;
  /**
   * Queues a run now. `name` is a crontab entry's identifier (the run gets the entry's
   * payload, with `payload` merged over it, queue, job key and attempts, and is recorded
   * under the identifier) or a task. With `wait`, resolves with its finished history row.
   */
  runJob(name: string, payload?: Record<string, unknown>, options?: RunJobOptions): Promise<QueuedRun>;
  /** Re-reads the crontab file now (it is also polled). */
  reloadCrontab(): Promise<CrontabEntry[] | null>;
  schedules(): CrontabEntry[];
  /**
   * Stops the node: no new jobs, running jobs get the grace period, then are cancelled and
   * retried. `{ hurry: true }` (also on a stop already under way: a second signal) cuts the
   * grace to zero; cancelling, recording, unlocking and releasing still happen.
   */
  stop(options?: { hurry?: boolean }): Promise<void>;
  /** Settles when the scheduler has stopped. */
  done: Promise<void>;
}

