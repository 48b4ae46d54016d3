import { EventEmitter } from "node:events";
import os from "node:os";
import type { FinishedJobs } from "../graphile/internals.ts";
import { createLogger, type Logger } from "../log.ts";

/**
 * What a running job needs from the process around it. Our runner binds its own;
 * under plain `npx graphile-worker` the default one below is used.
 */
export interface JobRuntime {
  logger: Logger;
  nodeId: string;
  /** job:start, job:success, job:failed, job:skipped: see src/runner/start.ts for payloads. */
  events: EventEmitter;
  /** Aborted when the node gives up waiting for running jobs at shutdown: their SQL is cancelled. */
  cancelAll?: AbortSignal;
  /** Jobs whose graphile-worker completion a run did itself; only on a pool the node owns (patient-pool.ts). */
  finishedJobs?: FinishedJobs;
}

let fallback: JobRuntime | undefined;

export function defaultRuntime(): JobRuntime {
  fallback ??= {
    logger: createLogger(process.env.LOG_LEVEL || "info"),
    nodeId: `${os.hostname()}:${process.pid}`,
    events: new EventEmitter(),
  };
  return fallback;
}
