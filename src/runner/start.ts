import { EventEmitter } from "node:events";
import fs from "node:fs";
import path from "node:path";
import { run, type ParsedCronItem, type Runner, type WorkerEvents, type WorkerPool } from "graphile-worker";
import { loadConfig } from "../config.ts";
import { createPool, waitForDatabase, type Pool } from "../db/pool.ts";
import { migrate } from "../db/migrate.ts";
import { projectRoot } from "../db/sql-file.ts";
import { SchedulerError } from "../errors.ts";
import { createLogger, graphileLoggerFor, type Logger } from "../log.ts";
import type { CrontabEntry } from "../crontab/parse.ts";
import { loadCrontab } from "../crontab/source.ts";
import { publishSchedules } from "../crontab/sync.ts";
import { watchCrontab, type CrontabWatcher } from "../crontab/watch.ts";
import { describePayloadErrors, type DefinedJob } from "../jobs/define.ts";
import type { JobRuntime } from "../jobs/runtime.ts";
import { pruneRuns } from "../history/runs.ts";
import { waitForRun, type FinishedRun } from "../history/wait.ts";
import { applicationNameFor, newNodeId } from "../cluster/nodes.ts";
import { startClusterNode, type ClusterSettings } from "../cluster/node.ts";
import type { ServiceReconcilerOptions } from "../orchestration/loop.ts";
import { checkBootstrapJobs, queueBootstrapJobs } from "./bootstrap.ts";
import { drainWorker } from "./drain.ts";
import { enqueueJob } from "./enqueue.ts";
import { startServicesOfHost } from "./services.ts";
import { loadTasks } from "./tasks.ts";

const version = (JSON.parse(fs.readFileSync(path.join(projectRoot, "package.json"), "utf8")) as { version: string }).version;

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

export interface SchedulerHandle {
  nodeId: string;
  host: string;
  /** job:start, job:success, job:failed, job:skipped, crontab:reloaded, stopped. */
  events: EventEmitter;
  pool: Pool;
  /** Queues a run of a task now; with `wait`, resolves with its finished history row. */
  runJob(task: string, payload?: Record<string, unknown>, options?: RunJobOptions): Promise<{ jobId: string; run?: FinishedRun }>;
  /** Re-reads the crontab file now (it is also polled). */
  reloadCrontab(): Promise<CrontabEntry[] | null>;
  schedules(): CrontabEntry[];
  stop(): Promise<void>;
  /** Settles when the scheduler has stopped. */
  done: Promise<void>;
}

/**
 * Starts a scheduler node: migrations, task files and extra jobs, the validated crontab,
 * graphile-worker's runner, and the node's own loops (heartbeat, history pruning,
 * crontab reload). Signals are the caller's business: call stop().
 */
export async function startScheduler(options: SchedulerOptions = {}): Promise<SchedulerHandle> {
  const config = loadConfig();
  const logger = options.logger ?? createLogger(config.LOG_LEVEL);
  const host = options.host ?? config.SCHEDULER_HOST;
  const nodeId = options.nodeId ?? newNodeId(host);
  const log = logger.child({ node: nodeId });

  const connectionString = options.connectionString ?? config.DATABASE_URL;
  if (!options.pool && !connectionString) {
    throw new SchedulerError("no_database", "startScheduler needs a pool or a connection string", { hint: "pass { pool } or { connectionString }, or set DATABASE_URL" });
  }
  const concurrency = options.concurrency ?? config.SCHEDULER_CONCURRENCY;
  if (!options.pool) await waitForDatabase(connectionString!);
  const pool = options.pool ?? createPool(connectionString!, { max: concurrency + 6, logger: log, applicationName: applicationNameFor(nodeId) });
  const ownsPool = !options.pool;

  try {
    await migrate(pool, log);
  } catch (error) {
    if (ownsPool) await pool.end();
    throw error;
  }

  const events = new EventEmitter();
  const cancelJobs = new AbortController();
  const runtime: JobRuntime = { logger: log, nodeId, events, cancelAll: cancelJobs.signal };
  const taskDirectory = options.taskDirectory === undefined ? path.resolve(config.SCHEDULER_TASKS_DIR ?? path.join(projectRoot, "tasks")) : options.taskDirectory;
  const { taskList, jobs } = await loadTasks(taskDirectory, options.jobs ?? [], runtime);
  const knownTasks = new Set(Object.keys(taskList));

  const crontab = loadCrontab({ text: options.crontab, path: path.resolve(options.crontabPath ?? config.SCHEDULER_CRONTAB) }, knownTasks);
  let entries = crontab.entries;
  const liveItems: ParsedCronItem[] = entries.map((entry) => entry.item);

  const bootstrapJobs = options.bootstrapJobs ?? config.SCHEDULER_BOOTSTRAP_JOBS;
  checkBootstrapJobs(bootstrapJobs, knownTasks);

  const cluster = await startClusterNode({
    pool,
    node: { nodeId, host, version, applicationName: applicationNameFor(nodeId) },
    logger: log,
    patientPool: ownsPool,
    runEvents: events,
    heartbeatMs: options.heartbeatMs ?? config.SCHEDULER_HEARTBEAT_MS,
    deadAfterMs: config.SCHEDULER_NODE_DEAD_AFTER_MS,
    rescueIntervalMs: config.SCHEDULER_RESCUE_INTERVAL_MS,
    giveUpMs: config.SCHEDULER_DB_GIVE_UP_MS,
    retentionDays: options.historyRetentionDays ?? config.SCHEDULER_HISTORY_RETENTION_DAYS,
    ...options.cluster,
  });
  await publishSchedules(pool, entries, nodeId);

  const workerEvents = new EventEmitter() as WorkerEvents;
  let workerPool: WorkerPool | undefined;
  workerEvents.on("pool:create", ({ workerPool: created }) => {
    workerPool = created;
  });
  cluster.watchWorker(workerEvents);

  const runner: Runner = await run(
    {
      pgPool: pool,
      noHandleSignals: true,
      logger: graphileLoggerFor(log),
      events: workerEvents,
      preset: {
        plugins: [cluster.graphilePlugin],
        worker: {
          concurrentJobs: concurrency,
          // graphile-worker 0.17+ batches completions; a job finishing during shutdown
          // would otherwise stay locked for 4 hours.
          completeJobBatchDelay: 0,
          failJobBatchDelay: 0,
          ...options.workerPreset,
        },
      },
    },
    taskList,
    liveItems,
  );

  await queueBootstrapJobs(pool, bootstrapJobs, nodeId, log);

  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number, what: string, fn: () => Promise<unknown>) => {
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      fn()
        .catch((error: unknown) => log.warn({ err: error }, `${what} failed; will retry`))
        .finally(() => (busy = false));
    }, ms);
    timers.push(timer);
  };
  const retentionDays = options.historyRetentionDays ?? config.SCHEDULER_HISTORY_RETENTION_DAYS;
  const prune = async () => {
    const removed = await pruneRuns(pool, retentionDays);
    if (removed > 0) log.info({ removed, retentionDays }, "pruned old run history");
  };
  every(3_600_000, "history pruning", prune);
  prune().catch((error: unknown) => log.warn({ err: error }, "history pruning failed"));

  const reconciler = await startServicesOfHost({ config, pool, host, connectionString, logger: log, overrides: options.services });

  let watcher: CrontabWatcher | null = null;
  const onChange = async (next: CrontabEntry[]) => {
    entries = next;
    await publishSchedules(pool, next, nodeId);
    events.emit("crontab:reloaded", next.map((entry) => entry.identifier));
  };
  if (crontab.path) {
    watcher = watchCrontab({
      path: crontab.path,
      initialText: crontab.text,
      knownTasks,
      liveItems,
      intervalMs: options.crontabPollMs ?? config.SCHEDULER_CRONTAB_POLL_MS,
      logger: log,
      onChange,
    });
  }

  log.info({ host, concurrency, tasks: [...knownTasks].sort(), crontab: crontab.path, schedules: entries.map((entry) => entry.identifier) }, "scheduler started");

  let stopping: Promise<void> | null = null;
  const shutdownGraceMs = options.shutdownGraceMs ?? config.SCHEDULER_SHUTDOWN_GRACE_MS;
  const stop = () => {
    stopping ??= (async () => {
      watcher?.stop();
      for (const timer of timers) clearInterval(timer);
      await drainWorker({ runner, workerPool: () => workerPool, cancelJobs, graceMs: shutdownGraceMs, db: pool, nodeId, logger: log });
      await reconciler?.stop().catch((error: unknown) => log.error({ err: error }, "stopping the service reconciler failed"));
      await cluster.stop();
      if (ownsPool) await pool.end();
      log.info("scheduler stopped");
      events.emit("stopped");
    })();
    return stopping;
  };

  const done = Promise.race([
    runner.promise.then(
      () => undefined,
      (error: unknown) => {
        log.error({ err: error }, "the worker stopped with an error");
        throw error;
      },
    ),
    // Database gone for good, or graphile-worker gave up its worker pool: stop, exit non-zero.
    cluster.failure,
  ]);
  // A library user who never awaits `done` must not get an unhandled rejection; `stopped`
  // and the logs say it too.
  done.catch(() => {});

  return {
    nodeId,
    host,
    events,
    pool,
    async runJob(task, payload = {}, runOptions = {}) {
      if (!knownTasks.has(task)) {
        throw new SchedulerError("unknown_job", `no job named '${task}'`, { hint: `known jobs: ${[...knownTasks].sort().join(", ")}` });
      }
      const job = jobs.get(task);
      if (job) {
        const parsed = job.schema.safeParse(payload);
        if (!parsed.success) throw new SchedulerError("invalid_payload", describePayloadErrors(task, parsed.error), { exitCode: 2 });
      }
      const jobId = await enqueueJob(pool, task, payload);
      if (!runOptions.wait) return { jobId };
      return { jobId, run: await waitForRun(pool, jobId, runOptions.timeoutMs ?? 600_000) };
    },
    reloadCrontab: () => (watcher ? watcher.check() : Promise.resolve(null)),
    schedules: () => entries,
    stop,
    done,
  };
}
