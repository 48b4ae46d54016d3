import type { EventEmitter } from "node:events";
import type { Pool } from "../db/pool.ts";
import type { CrontabEntry } from "../crontab/parse.ts";
import type { DefinedJob } from "../jobs/define.ts";
import type { FinishedRun } from "../history/wait.ts";
import type { Logger } from "../log.ts";
import type { ClusterSettings } from "../cluster/node.ts";
import type { SchedulerPack } from "../pack.ts";

// What startScheduler takes and gives back.

export interface SchedulerOptions {
  /** An existing pool (the application's); otherwise `connectionString` (or DATABASE_URL) is used. */
  pool?: Pool;
  connectionString?: string;
  /**
   * Packs plugged into the engine (migrations, task files, default crontab, node loops).
   * The library's startScheduler adds the platform's unless `platform: false`.
   */
  packs?: SchedulerPack[];
  /** Job definitions to run beside (or instead of) the task files. */
  jobs?: DefinedJob[];
  /** Folder of task files; default SCHEDULER_TASKS_DIR, else the first pack's. `null` for none. */
  taskDirectory?: string | null;
  /** Crontab text. When given, `crontabPath` is not read or watched. */
  crontab?: string;
  /** Crontab file, watched for edits; default SCHEDULER_CRONTAB, else the first pack's; none without either. */
  crontabPath?: string;
  /** The time zone of crontab lines without `?tz=`; default SCHEDULER_TIMEZONE (UTC). */
  timezone?: string;
  concurrency?: number;
  host?: string;
  nodeId?: string;
  logger?: Logger;
  /** Jobs queued once when the node starts; default SCHEDULER_BOOTSTRAP_JOBS, else the packs'. */
  bootstrapJobs?: string[];
  historyRetentionDays?: number;
  /** How long stop() lets running jobs finish before it cancels them. */
  shutdownGraceMs?: number;
  crontabPollMs?: number;
  /** How often idle workers look for jobs nobody announced; default SCHEDULER_POLL_INTERVAL_MS (30 s). */
  pollIntervalMs?: number;
  heartbeatMs?: number;
  /** Cluster timing; defaults from SCHEDULER_HEARTBEAT_MS, _NODE_DEAD_AFTER_MS, _RESCUE_INTERVAL_MS, SCHEDULER_DB_GIVE_UP_MS. */
  cluster?: Partial<ClusterSettings>;
  /**
   * Where the node serves the dashboard, its JSON API, /healthz, /readyz and /metrics:
   * `host:port` (port 0 lets the OS pick, see `httpAddress`), `true` for SCHEDULER_HTTP_ADDR or
   * else 127.0.0.1:9464 (what the CLI's `start` does), false for none. Unset: served only
   * when SCHEDULER_HTTP_ADDR is set, so an application embedding the scheduler opens no port
   * it did not ask for.
   */
  http?: string | boolean;
  /**
   * The token that enables the dashboard's actions (run now, dry run, pause, resume) on the
   * HTTP endpoint; default SCHEDULER_HTTP_TOKEN; unset: read-only. At least 16 characters.
   */
  httpToken?: string;
  /**
   * Names the HTTP endpoint is reached by besides this machine's addresses and localhost (a
   * Kubernetes service); default SCHEDULER_HTTP_ALLOWED_HOSTS. Other Host headers get 421.
   */
  httpAllowedHosts?: string[];
  /** How long /metrics reuses gauges read from the database; default 5000 ms. */
  metricsCacheMs?: number;
  /** Extra graphile-worker `preset.worker` options (e.g. localQueue). */
  workerPreset?: Record<string, unknown>;
  /**
   * Who the audit trail (scheduler.audit) says ran a job by hand through `runJob`, or migrated
   * the schema at start; default the application's package name (npm_package_name, else the
   * nearest package.json above its main script), else "library".
   */
  actor?: string;
}

export interface RunJobOptions {
  wait?: boolean;
  timeoutMs?: number;
  /** Who asks, for the audit trail (e.g. the application's user); default the `actor` option. */
  actor?: string;
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
  /** job:start, job:success, job:failed, job:skipped, job:stuck and job:unstuck (a run past its timeout whose function has not returned, and its return), crontab:reloaded, stopped. */
  events: EventEmitter;
  pool: Pool;
  /** Where the HTTP endpoint listens (`host:port`, the actual port when 0 was asked); null when off. */
  httpAddress: string | null;
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

