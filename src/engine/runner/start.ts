import { EventEmitter } from "node:events";
import fs from "node:fs";
import path from "node:path";
import { run, type ParsedCronItem, type Runner, type WorkerEvents, type WorkerPool } from "graphile-worker";
import { writerConnector } from "../db/connect.ts";
import { createConnector } from "../db/connector.ts";
import { connectorOf, createPool, waitForDatabase, type Pool } from "../db/pool.ts";
import { ensureSchema } from "../db/readiness.ts";
import { schemaPlanOf } from "../db/schema-plan.ts";
import { requireSessionConnection } from "../db/session-check.ts";
import { projectRoot } from "../db/sql-file.ts";
import { SchedulerError } from "../errors.ts";
import { unknownJob } from "./manual.ts";
import { graphileLoggerFor } from "../log.ts";
import { startCronLoop } from "../crontab/cron-loop.ts";
import type { CrontabEntry } from "../crontab/parse.ts";
import { publishSchedules } from "../crontab/sync.ts";
import { watchCrontab, type CrontabWatcher } from "../crontab/watch.ts";
import { pruneAudit } from "../audit/trail.ts";
import { pruneRuns } from "../history/runs.ts";
import { waitForRun } from "../history/wait.ts";
import { applicationNameFor, publishNodeTasks, recordCrontabState } from "../cluster/nodes.ts";
import { startClusterNode } from "../cluster/node.ts";
import { queueBootstrapJobs } from "./bootstrap.ts";
import { drainWorker } from "./drain.ts";
import { holdJitteredTicks } from "./jitter.ts";
import { pollForWorkers, WORKER_POLL_FACTOR } from "./poller.ts";
import { wakeIdleWorkers } from "./wakeups.ts";
import type { SchedulerHandle, SchedulerOptions } from "./options.ts";
import type { PreparedScheduler } from "./prepare.ts";
import { enqueueRun, entryForRun, requestForEntry, requestForTask } from "./run-request.ts";
import type { PackNodeLoop } from "../pack.ts";
import { dashboardUrl, describeAddress } from "../http/address.ts";
import { createHttpPool } from "../http/http-pool.ts";
import { schedulerMetrics, type SchedulerMetrics } from "../http/metrics.ts";
import { checkReadiness } from "../http/readiness.ts";
import { nodeRoutes } from "../http/routes.ts";
import { startHttpServer, type HttpEndpoint } from "../http/server.ts";

export type { QueuedRun, RunJobOptions, SchedulerHandle, SchedulerOptions } from "./options.ts";

/** How long a pooled connection of a node stays open unused. */
const POOL_IDLE_MS = 2000;

const version = (JSON.parse(fs.readFileSync(path.join(projectRoot, "package.json"), "utf8")) as { version: string }).version;

/**
 * Connects and makes sure the schema is current (migrating only when it is not, so a node
 * connected as a runtime role issues no DDL), then runs graphile-worker
 * with the node's own loops (heartbeat and rescue, history pruning, crontab and task-file
 * reload) and the packs'. `prepared` comes from prepareScheduler, which checked everything
 * that needs no database. Signals are the caller's business: call stop().
 */
export async function launchScheduler(prepared: PreparedScheduler): Promise<SchedulerHandle> {
  const { options, config, log, host, nodeId, events, cancelJobs, tasks, crontab, bootstrapJobs, packs, actor } = prepared;
  const connectionString = options.connectionString ?? config.DATABASE_URL;
  if (!options.pool && !connectionString) {
    throw new SchedulerError("no_database", "startScheduler needs a pool or a connection string", { hint: "pass { pool } or { connectionString }, or set DATABASE_URL", exitCode: 2 });
  }
  const concurrency = options.concurrency ?? config.SCHEDULER_CONCURRENCY;
  // Every connection of the node comes from here (db/connector.ts): hosts tried in order, a
  // server that takes writes required, read-only servers left for the next primary.
  const connector = options.pool
    ? (connectorOf(options.pool)?.withRequirement("read-write", log) ?? createConnector(options.pool.options, { requirement: "read-write", logger: log }))
    : writerConnector(connectionString!, "a node", log);
  if (!options.pool) await waitForDatabase(connector, { logger: log, primaryTimeoutMs: prepared.cluster.giveUpMs });
  // A connection per running job and one for the node's bookkeeping; the node's session is
  // apart. Idle connections close after POOL_IDLE_MS: an idle node holds its session only.
  const pool: Pool = options.pool ?? createPool(connector, { max: concurrency + 1, idleTimeoutMillis: POOL_IDLE_MS, logger: log, applicationName: applicationNameFor(nodeId) });
  const ownsPool = !options.pool;

  try {
    // Before any job is taken: a transaction-mode pooler would let a node run one job and die.
    await requireSessionConnection(connector, options.pool ? "the application's pool" : connector.target, { waitMs: prepared.cluster.giveUpMs, logger: log });
    await ensureSchema(pool, log, schemaPlanOf(packs), actor);
  } catch (error) {
    if (ownsPool) await pool.end();
    throw error;
  }

  let entries = crontab.entries;
  const liveItems: ParsedCronItem[] = entries.map((entry) => entry.item);

  // Only with an HTTP endpoint: without one nobody reads them. Its reads have a pool of their
  // own, so that a dashboard or a scraper never takes a connection a job needs.
  const httpPool: Pool | null = prepared.http ? createHttpPool(connector, { logger: log, applicationName: applicationNameFor(nodeId) }) : null;
  const metrics: SchedulerMetrics | null = httpPool
    ? schedulerMetrics({ db: httpPool, events, packs, nodeId, deadAfterMs: prepared.cluster.deadAfterMs, logger: log, cacheMs: options.metricsCacheMs })
    : null;
  // Every loaded task's success and failed series exist at 0 from the start, not only the
  // crontab's: a job run outside the crontab shows its first failure in increase() too.
  metrics?.node.scheduled([...tasks.names()].map((task) => ({ job: task, task })));

  // Shared with the heartbeat, which registers the node again after it was pruned.
  const registration = { nodeId, host, version, applicationName: applicationNameFor(nodeId), tasks: [...tasks.names()].sort() };
  const cluster = await startClusterNode({
    pool,
    connector,
    node: registration,
    logger: log,
    patientPool: ownsPool,
    finishedJobs: prepared.runtime.finishedJobs,
    runEvents: events,
    ...prepared.cluster,
    onRescue: metrics ? (rescue) => void metrics.node.rescued(rescue).catch((error: unknown) => log.warn({ err: error }, "counting a rescue's abandoned runs failed")) : undefined,
    onClockSkew: metrics ? (skewMs) => metrics.node.clockSkew(skewMs) : undefined,
  });
  await publishSchedules(pool, entries, nodeId);

  const workerEvents = new EventEmitter() as WorkerEvents;
  let workerPool: WorkerPool | undefined;
  workerEvents.on("pool:create", ({ workerPool: created }) => {
    workerPool = created;
  });
  cluster.watchWorker(workerEvents);
  const wakeups = wakeIdleWorkers({ events: workerEvents, workerPool: () => workerPool, concurrency, db: pool, logger: log });
  const jitter = holdJitteredTicks(workerEvents, () => workerPool, cluster.clock.now);
  const pollIntervalMs = options.pollIntervalMs ?? config.SCHEDULER_POLL_INTERVAL_MS;
  const poller = pollForWorkers({ events: workerEvents, workerPool: () => workerPool, intervalMs: pollIntervalMs });

  const runner: Runner = await run(
    {
      pgPool: pool,
      noHandleSignals: true,
      logger: graphileLoggerFor(log),
      events: workerEvents,
      preset: {
        plugins: [cluster.graphilePlugin, poller.plugin],
        worker: {
          concurrentJobs: concurrency,
          // graphile-worker 0.17+ batches completions; a job finishing during shutdown
          // would otherwise stay locked for 4 hours.
          completeJobBatchDelay: 0,
          failJobBatchDelay: 0,
          // New jobs, rescued ones and woken lock waiters arrive by NOTIFY, retries and what
          // was missed while not listening by wakeIdleWorkers: polling is only the fallback,
          // done by the node's poller (one look per interval, poller.ts), so an idle node
          // costs next to nothing and keeps no pooled connection open.
          pollInterval: pollIntervalMs * WORKER_POLL_FACTOR,
          ...options.workerPreset,
        },
      },
    },
    tasks.taskList,
    // graphile-worker's cron runs on this machine's clock: the node runs its loop instead, on
    // the database's (crontab/cron-loop.ts), with the same bookkeeping.
    [],
  );
  const cron = startCronLoop({ pool, items: liveItems, now: cluster.clock.reached, events: workerEvents as unknown as EventEmitter, logger: log, nodeId });

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
  // The audit trail is kept as long as the history.
  const prune = async () => {
    const removed = await pruneRuns(pool, retentionDays);
    if (removed > 0) log.info({ removed, retentionDays }, "pruned old run history");
    const audited = await pruneAudit(pool, retentionDays);
    if (audited > 0) log.info({ removed: audited, retentionDays }, "pruned old audit rows");
  };
  every(3_600_000, "history pruning", prune);
  prune().catch((error: unknown) => log.warn({ err: error }, "history pruning failed"));

  const packLoops: PackNodeLoop[] = [];
  for (const pack of packs) {
    const loop = await pack.startNode?.({ config, pool, host, nodeId, connectionString, logger: log, listen: cluster.session.listen });
    if (loop) packLoops.push(loop);
  }

  // New task files are loaded live; the node tells the cluster it can now run them.
  let publishedTasks = registration.tasks.join();
  const refreshTasks = async () => {
    await tasks.refresh();
    const names = [...tasks.names()].sort();
    if (names.join() === publishedTasks) return;
    registration.tasks = names;
    await publishNodeTasks(pool, nodeId, names);
    metrics?.node.scheduled(names.map((task) => ({ job: task, task })));
    publishedTasks = names.join();
  };
  const crontabPollMs = options.crontabPollMs ?? config.SCHEDULER_CRONTAB_POLL_MS;
  let watcher: CrontabWatcher | null = null;
  if (crontab.path) {
    watcher = watchCrontab({
      path: crontab.path,
      initialText: crontab.text,
      catalog: tasks,
      parseOptions: crontab.parseOptions,
      liveItems,
      intervalMs: crontabPollMs,
      logger: log,
      beforeCheck: refreshTasks,
      async onChange(next: CrontabEntry[]) {
        entries = next;
        await publishSchedules(pool, next, nodeId);
        events.emit("crontab:reloaded", next.map((entry) => entry.identifier));
      },
      async onStateChange(rejection) {
        await recordCrontabState(pool, nodeId, rejection);
        events.emit(rejection ? "crontab:rejected" : "crontab:repaired", rejection);
      },
    });
  } else {
    every(crontabPollMs, "task folder reload", refreshTasks);
  }

  let stopping: Promise<void> | null = null;
  const hurry = new AbortController();
  const shutdownGraceMs = options.shutdownGraceMs ?? config.SCHEDULER_SHUTDOWN_GRACE_MS;
  const stop = (stopOptions: { hurry?: boolean } = {}) => {
    if (stopOptions.hurry) hurry.abort();
    stopping ??= (async () => {
      await http?.close();
      metrics?.stop();
      await httpPool?.end();
      watcher?.stop();
      wakeups.stop();
      poller.stop();
      jitter.stop();
      // Beside the worker's shutdown, as graphile-worker stops its own cron: a tick being
      // queued while the database is away waits no longer than the worker's statements do.
      const cronStopped = cron.stop();
      for (const timer of timers) clearInterval(timer);
      await drainWorker({ runner, workerPool: () => workerPool, cancelJobs, graceMs: shutdownGraceMs, hurry: hurry.signal, db: pool, nodeId, logger: log });
      await cronStopped;
      for (const loop of packLoops.reverse()) await loop.stop().catch((error: unknown) => log.error({ err: error }, "stopping a node loop failed"));
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
  let failed: string | null = null;
  done.catch((error: unknown) => {
    failed = `the node failed: ${error instanceof Error ? error.message : String(error)}`;
  });

  // Last, so /readyz never answers for a node that is not running its worker yet. An address
  // in use that was asked for stops the node again and refuses it (exit 2).
  let http: HttpEndpoint | null = null;
  if (prepared.http && metrics && httpPool) {
    try {
      http = await startHttpServer(
        prepared.http,
        nodeRoutes(
          { db: pool, reads: httpPool, config, packs, tasks, nodeId, host, version, deadAfterMs: prepared.cluster.deadAfterMs, token: prepared.httpToken },
          {
            readiness: () =>
              checkReadiness({
                db: httpPool,
                databaseDownSince: () => cluster.health.downSince,
                workerProblem: () => failed ?? (stopping ? "the node is stopping" : workerPool ? null : "the worker has not started its pool yet"),
              }),
            metrics: async () => ({ contentType: metrics.contentType, body: await metrics.render() }),
          },
        ),
        log,
        { allowedHosts: prepared.httpAllowedHosts },
      );
    } catch (error) {
      // The default address taken (a second node on this machine): the node runs without its
      // endpoint rather than refuse to start; an address asked for must be served or refused.
      const inUse = ((error as { cause?: { code?: string } }).cause?.code ?? "") === "EADDRINUSE";
      if (inUse && !prepared.httpExplicit) {
        log.warn({ address: describeAddress(prepared.http) }, "the HTTP endpoint (/healthz, /readyz, /metrics) is not served: its default address is taken, by another node on this machine? Set SCHEDULER_HTTP_ADDR for each node");
      } else {
        await stop({ hurry: true });
        throw error;
      }
    }
  }

  if (http) {
    // One line a person can click, in pretty and JSON logs alike.
    const url = dashboardUrl(http.address);
    log.info({ dashboard: url }, `dashboard: ${url} (${prepared.httpToken ? "actions enabled with the token in SCHEDULER_HTTP_TOKEN" : "read-only; set SCHEDULER_HTTP_TOKEN for actions"})`);
  }
  // The cron's start has recorded the ticks passed while no node ran (or failed and retries):
  // from here the schedules' late flags are true ones.
  await cron.ready;
  // Said once everything is up, its HTTP endpoint included: whoever waits for this line may use it.
  log.info({ host, concurrency, tasks: [...tasks.names()].sort(), crontab: crontab.path, schedules: entries.map((entry) => entry.identifier) }, "scheduler started");

  return {
    nodeId,
    host,
    events,
    pool,
    httpAddress: http ? describeAddress(http.address) : null,
    async runJob(name, payload = {}, runOptions = {}) {
      const entry = entries.find((candidate) => candidate.identifier === name);
      if (!entry && !tasks.names().has(name)) throw unknownJob(name, tasks.names(), entries.map((e) => e.identifier));
      const request = entry ? requestForEntry(entryForRun(entry), payload) : requestForTask(name, payload);
      const problem = tasks.checkPayload(request.task, request.fields);
      if (problem) throw new SchedulerError("invalid_payload", problem, { exitCode: 2 });
      const { jobId, lastRunId } = await enqueueRun(pool, request, { actor: runOptions.actor ?? actor, overrides: payload });
      const queued = { jobId, jobName: request.jobName, task: request.task };
      if (!runOptions.wait) return queued;
      return { ...queued, run: await waitForRun(pool, jobId, lastRunId, runOptions.timeoutMs ?? 600_000) };
    },
    reloadCrontab: () => (watcher ? watcher.check() : refreshTasks().then(() => null)),
    schedules: () => entries,
    stop,
    done,
  };
}

