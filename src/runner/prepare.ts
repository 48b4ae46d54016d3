import { EventEmitter } from "node:events";
import path from "node:path";
import { checkClusterSettings, type ClusterSettings } from "../cluster/node.ts";
import { newNodeId } from "../cluster/nodes.ts";
import { loadConfig, type Config } from "../config.ts";
import { loadCrontab, type CrontabSource } from "../crontab/source.ts";
import { projectRoot } from "../db/sql-file.ts";
import { createLogger, type Logger } from "../log.ts";
import type { JobRuntime } from "../jobs/runtime.ts";
import { checkBootstrapJobs } from "./bootstrap.ts";
import type { SchedulerOptions } from "./options.ts";
import { loadTasks, type LoadedTasks } from "./tasks.ts";

// The first phase of a node: everything that can be checked without a database. The task
// files, the whole crontab (each entry's payload against its job's schema included), the
// bootstrap jobs and the cluster timing are checked here, so a node that cannot run is
// refused at once (exit 2) and never touches, let alone migrates, a database.

export interface PreparedScheduler {
  options: SchedulerOptions;
  config: Config;
  logger: Logger;
  /** This node's logger (with its id). */
  log: Logger;
  host: string;
  nodeId: string;
  events: EventEmitter;
  cancelJobs: AbortController;
  runtime: JobRuntime;
  tasks: LoadedTasks;
  crontab: CrontabSource;
  bootstrapJobs: string[];
  cluster: ClusterSettings & { retentionDays: number };
}

export async function prepareScheduler(options: SchedulerOptions = {}): Promise<PreparedScheduler> {
  const config = loadConfig();
  const logger = options.logger ?? createLogger(config.LOG_LEVEL);
  const host = options.host ?? config.SCHEDULER_HOST;
  const nodeId = options.nodeId ?? newNodeId(host);
  const log = logger.child({ node: nodeId });

  const cluster = {
    heartbeatMs: options.heartbeatMs ?? config.SCHEDULER_HEARTBEAT_MS,
    deadAfterMs: config.SCHEDULER_NODE_DEAD_AFTER_MS,
    rescueIntervalMs: config.SCHEDULER_RESCUE_INTERVAL_MS,
    giveUpMs: config.SCHEDULER_DB_GIVE_UP_MS,
    retentionDays: options.historyRetentionDays ?? config.SCHEDULER_HISTORY_RETENTION_DAYS,
    ...options.cluster,
  };
  checkClusterSettings(cluster);

  const events = new EventEmitter();
  const cancelJobs = new AbortController();
  const runtime: JobRuntime = { logger: log, nodeId, events, cancelAll: cancelJobs.signal };
  const taskDirectory = options.taskDirectory === undefined ? path.resolve(config.SCHEDULER_TASKS_DIR ?? path.join(projectRoot, "tasks")) : options.taskDirectory;
  const tasks = await loadTasks(taskDirectory, options.jobs ?? [], runtime);
  const crontab = loadCrontab({ text: options.crontab, path: path.resolve(options.crontabPath ?? config.SCHEDULER_CRONTAB) }, tasks);
  const bootstrapJobs = options.bootstrapJobs ?? config.SCHEDULER_BOOTSTRAP_JOBS;
  checkBootstrapJobs(bootstrapJobs, tasks.names());

  return { options, config, logger, log, host, nodeId, events, cancelJobs, runtime, tasks, crontab, bootstrapJobs, cluster };
}
