import { EventEmitter } from "node:events";
import path from "node:path";
import { checkClusterSettings, type ClusterSettings } from "../cluster/node.ts";
import { newNodeId } from "../cluster/nodes.ts";
import { applicationActor } from "../audit/actor.ts";
import { z } from "zod";
import { hostName, httpToken as httpTokenSchema, loadEngineConfig, type EngineConfig } from "../config.ts";
import { loadCrontab, type CrontabSource } from "../crontab/source.ts";
import { zoneProblem } from "../crontab/zone.ts";
import { SchedulerError } from "../errors.ts";
import { finishedJobs } from "../graphile/internals.ts";
import { DEFAULT_HTTP_ADDR, parseHttpAddr, type HttpAddress } from "../http/address.ts";
import { createLogger, type Logger } from "../log.ts";
import type { JobRuntime } from "../jobs/runtime.ts";
import type { SchedulerPack } from "../pack.ts";
import { checkBootstrapJobs } from "./bootstrap.ts";
import type { SchedulerOptions } from "./options.ts";
import { loadTasks, type LoadedTasks } from "./tasks.ts";

// The first phase of a node: everything that can be checked without a database. The task
// files, the whole crontab (each entry's payload against its job's schema included), the
// bootstrap jobs and the cluster timing are checked here, so a node that cannot run is
// refused at once (exit 2) and never touches, let alone migrates, a database.

export interface PreparedScheduler {
  options: SchedulerOptions;
  config: EngineConfig;
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
  packs: SchedulerPack[];
  /** The HTTP endpoint's address; null when off. */
  http: HttpAddress | null;
  /** The token that enables the HTTP actions; null: read-only. */
  httpToken: string | null;
  /** Whether the address was asked for (option or SCHEDULER_HTTP_ADDR) rather than the default. */
  httpExplicit: boolean;
  /** Who the audit trail says did what this node does on request (runJob, migrating at start). */
  actor: string;
  /** Host names the endpoint answers to besides this machine's own (SCHEDULER_HTTP_ALLOWED_HOSTS). */
  httpAllowedHosts: string[];
}

/** The task folder: given, else SCHEDULER_TASKS_DIR, else the first pack's; none for the engine alone. */
export function taskDirectoryFor(options: { taskDirectory?: string | null }, config: EngineConfig, packs: readonly SchedulerPack[]): string | null {
  if (options.taskDirectory !== undefined) return options.taskDirectory;
  const directory = config.SCHEDULER_TASKS_DIR ?? packs.find((pack) => pack.taskDirectory)?.taskDirectory;
  return directory ? path.resolve(directory) : null;
}

export async function prepareScheduler(options: SchedulerOptions = {}): Promise<PreparedScheduler> {
  const config = loadEngineConfig();
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
  // The node's own pool skips graphile-worker's completions that finish_run made redundant.
  const runtime: JobRuntime = { logger: log, nodeId, events, cancelAll: cancelJobs.signal, finishedJobs: options.pool ? undefined : finishedJobs() };
  const packs = options.packs ?? [];
  const tasks = await loadTasks(taskDirectoryFor(options, config, packs), options.jobs ?? [], runtime);
  const crontabPath = options.crontabPath ?? config.SCHEDULER_CRONTAB ?? packs.find((pack) => pack.crontabPath)?.crontabPath;
  const timezone = options.timezone ?? config.SCHEDULER_TIMEZONE;
  const timezoneProblem = zoneProblem(timezone);
  if (timezoneProblem) throw new SchedulerError("invalid_config", `timezone option: ${timezoneProblem}`, { exitCode: 2 });
  const crontab = loadCrontab({ text: options.crontab, path: crontabPath ? path.resolve(crontabPath) : null }, tasks, { defaultTimezone: timezone });
  const bootstrapJobs = options.bootstrapJobs ?? config.SCHEDULER_BOOTSTRAP_JOBS ?? packs.flatMap((pack) => pack.bootstrapJobs ?? []);
  checkBootstrapJobs(bootstrapJobs, tasks.names());
  const http = httpAddressFor(options, config);
  // What a pack checks before any database (the platform: its services allowlist file).
  for (const pack of packs) await pack.prepare?.({ config, logger: log });

  const httpExplicit = typeof options.http === "string" || config.SCHEDULER_HTTP_ADDR !== undefined;
  const httpToken = httpTokenFor(options, config);
  const actor = options.actor ?? applicationActor();
  const httpAllowedHosts = allowedHostsFor(options, config);
  return { options, config, logger, log, host, nodeId, events, cancelJobs, runtime, tasks, crontab, bootstrapJobs, cluster, packs, http, httpExplicit, httpToken, actor, httpAllowedHosts };
}

/**
 * The `http` option's address; `true`: SCHEDULER_HTTP_ADDR, else the default; unset: only
 * SCHEDULER_HTTP_ADDR. A library serves nothing its application did not ask for; the CLI's
 * `start` asks with `true`.
 */
function httpAddressFor(options: SchedulerOptions, config: EngineConfig): HttpAddress | null {
  if (options.http === false) return null;
  const asked = typeof options.http === "string" ? options.http : (config.SCHEDULER_HTTP_ADDR ?? (options.http === true ? DEFAULT_HTTP_ADDR : null));
  if (asked === null) return null;
  const parsed = parseHttpAddr(asked);
  if (parsed && "problem" in parsed) {
    throw new SchedulerError("invalid_config", `http option ${JSON.stringify(options.http)}: expected ${parsed.problem}`, { exitCode: 2 });
  }
  return parsed;
}

/** The `httpToken` option, else SCHEDULER_HTTP_TOKEN (checked when the settings were read). */
function httpTokenFor(options: SchedulerOptions, config: EngineConfig): string | null {
  if (options.httpToken === undefined) return config.SCHEDULER_HTTP_TOKEN ?? null;
  const parsed = httpTokenSchema.safeParse(options.httpToken);
  if (!parsed.success) {
    throw new SchedulerError("invalid_config", `httpToken option: ${parsed.error.issues.map((issue) => issue.message).join("; ")}`, { hint: "pass a random token of 16 or more characters, or leave it out for a read-only endpoint", exitCode: 2 });
  }
  return parsed.data;
}

/** The `httpAllowedHosts` option, else SCHEDULER_HTTP_ALLOWED_HOSTS (checked when the settings were read). */
function allowedHostsFor(options: SchedulerOptions, config: EngineConfig): string[] {
  if (options.httpAllowedHosts === undefined) return config.SCHEDULER_HTTP_ALLOWED_HOSTS;
  const parsed = z.array(hostName).safeParse(options.httpAllowedHosts);
  if (!parsed.success) {
    throw new SchedulerError("invalid_config", `httpAllowedHosts option: ${parsed.error.issues.map((issue) => issue.message).join("; ")}`, { hint: 'e.g. ["scheduler.ops.svc.cluster.local"]', exitCode: 2 });
  }
  return parsed.data;
}
