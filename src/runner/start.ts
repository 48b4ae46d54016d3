import { EventEmitter } from "node:events";
import fs from "node:fs";
import path from "node:path";
import { run, type ParsedCronItem, type Runner, type WorkerEvents, type WorkerPool } from "graphile-worker";
import { createPool, waitForDatabase, type Pool } from "../db/pool.ts";
import { migrate } from "../db/migrate.ts";
import { projectRoot } from "../db/sql-file.ts";
import { SchedulerError } from "../errors.ts";
import { graphileLoggerFor } from "../log.ts";
import type { CrontabEntry } from "../crontab/parse.ts";
import { publishSchedules } from "../crontab/sync.ts";
import { watchCrontab, type CrontabWatcher } from "../crontab/watch.ts";
import { pruneRuns } from "../history/runs.ts";
import { waitForRun } from "../history/wait.ts";
import { applicationNameFor, publishNodeTasks } from "../cluster/nodes.ts";
import { startClusterNode } from "../cluster/node.ts";
import { queueBootstrapJobs } from "./bootstrap.ts";
import { drainWorker } from "./drain.ts";
import type { SchedulerHandle, SchedulerOptions } from "./options.ts";
import { prepareScheduler, type PreparedScheduler } from "./prepare.ts";
import { enqueueRun, entryForRun, requestForEntry, requestForTask } from "./run-request.ts";
import { startServicesOfHost } from "./services.ts";

export type { QueuedRun, RunJobOptions, SchedulerHandle, SchedulerOptions } from "./options.ts";

const version = (JSON.parse(fs.readFileSync(path.join(projectRoot, "package.json"), "utf8")) as { version: string }).version;

/**
 * Starts a scheduler node: checks everything that needs no database (prepareScheduler),
 * then connects and migrates, and runs graphile-worker with the node's own loops
 * (heartbeat and rescue, history pruning, crontab and task-file reload, services).
 * Signals are the caller's business: call stop().
 */
export async function startScheduler(options: SchedulerOptions = {}): Promise<SchedulerHandle> {
  return launchScheduler(await prepareScheduler(options));
}

export async function launchScheduler(prepared: PreparedScheduler): Promise<SchedulerHandle> {
  const { options, config, log, host, nodeId, events, cancelJobs, tasks, crontab, bootstrapJobs } = prepared;
  const connectionString = options.connectionString ?? config.DATABASE_URL;
  if (!options.pool && !connectionString) {
    throw new SchedulerError("no_database", "startScheduler needs a pool or a connection string", { hint: "pass { pool } or { connectionString }, or set DATABASE_URL", exitCode: 2 });
  }
  const concurrency = options.concurrency ?? config.SCHEDULER_CONCURRENCY;
  if (!options.pool) await waitForDatabase(connectionString!, { logger: log });
  const pool: Pool = options.pool ?? createPool(connectionString!, { max: concurrency + 6, logger: log, applicationName: applicationNameFor(nodeId) });
  const ownsPool = !options.pool;

  try {
    await migrate(pool, log);
  } catch (error) {
    if (ownsPool) await pool.end();
    throw error;
  }

  let entries = crontab.entries;
  const liveItems: ParsedCronItem[] = entries.map((entry) => entry.item);

  // Shared with the heartbeat, which registers the node again after it was pruned.
  const registration = { nodeId, host, version, applicationName: applicationNameFor(nodeId), tasks: [...tasks.names()].sort() };
  const cluster = await startClusterNode({
    pool,
    node: registration,
    logger: log,
    patientPool: ownsPool,
    runEvents: events,
    ...prepared.cluster,
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
    tasks.taskList,
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
  const retentionDays = prepared.cluster.retentionDays;
  const prune = async () => {
    const removed = await pruneRuns(pool, retentionDays);
    if (removed > 0) log.info({ removed, retentionDays }, "pruned old run history");
  };
  every(3_600_000, "history pruning", prune);
  prune().catch((error: unknown) => log.warn({ err: error }, "history pruning failed"));

  const reconciler = await startServicesOfHost({ config, pool, host, connectionString, logger: log, overrides: options.services });

  // New task files are loaded live; the node tells the cluster it can now run them.
  let publishedTasks = registration.tasks.join();
  const refreshTasks = async () => {
    await tasks.refresh();
    const names = [...tasks.names()].sort();
    if (names.join() === publishedTasks) return;
    registration.tasks = names;
    await publishNodeTasks(pool, nodeId, names);
    publishedTasks = names.join();
  };
  const crontabPollMs = options.crontabPollMs ?? config.SCHEDULER_CRONTAB_POLL_MS;
  let watcher: CrontabWatcher | null = null;
  if (crontab.path) {
    watcher = watchCrontab({
      path: crontab.path,
      initialText: crontab.text,
      catalog: tasks,
      liveItems,
      intervalMs: crontabPollMs,
      logger: log,
      beforeCheck: refreshTasks,
      async onChange(next: CrontabEntry[]) {
        entries = next;
        await publishSchedules(pool, next, nodeId);
        events.emit("crontab:reloaded", next.map((entry) => entry.identifier));
      },
    });
  } else {
    every(crontabPollMs, "task folder reload", refreshTasks);
  }

  log.info({ host, concurrency, tasks: [...tasks.names()].sort(), crontab: crontab.path, schedules: entries.map((entry) => entry.identifier) }, "scheduler started");

  let stopping: Promise<void> | null = null;
  const hurry = new AbortController();
  const shutdownGraceMs = options.shutdownGraceMs ?? config.SCHEDULER_SHUTDOWN_GRACE_MS;
  const stop = (stopOptions: { hurry?: boolean } = {}) => {
    if (stopOptions.hurry) hurry.abort();
    stopping ??= (async () => {
      watcher?.stop();
      for (const timer of timers) clearInterval(timer);
      await drainWorker({ runner, workerPool: () => workerPool, cancelJobs, graceMs: shutdownGraceMs, hurry: hurry.signal, db: pool, nodeId, logger: log });
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
    async runJob(name, payload = {}, runOptions = {}) {
      const entry = entries.find((candidate) => candidate.identifier === name);
      if (!entry && !tasks.names().has(name)) {
        throw new SchedulerError("unknown_job", `no job or crontab entry named '${name}'`, {
          hint: `tasks: ${[...tasks.names()].sort().join(", ")}; entries: ${entries.map((e) => e.identifier).sort().join(", ") || "(none)"}`,
          exitCode: 2,
        });
      }
      const request = entry ? requestForEntry(entryForRun(entry), payload) : requestForTask(name, payload);
      const problem = tasks.checkPayload(request.task, request.fields);
      if (problem) throw new SchedulerError("invalid_payload", problem, { exitCode: 2 });
      const jobId = await enqueueRun(pool, request);
      const queued = { jobId, jobName: request.jobName, task: request.task };
      if (!runOptions.wait) return queued;
      return { ...queued, run: await waitForRun(pool, jobId, runOptions.timeoutMs ?? 600_000) };
    },
    reloadCrontab: () => (watcher ? watcher.check() : refreshTasks().then(() => null)),
    schedules: () => entries,
    stop,
    done,
  };
}

