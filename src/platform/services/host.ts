import type { PlatformConfig } from "../config.ts";
import type { Pool } from "../../engine/db/pool.ts";
import { SchedulerError } from "../../engine/errors.ts";
import type { SessionListen } from "../../engine/pack.ts";
import type { Logger } from "../../engine/log.ts";
import type { Allowlist } from "./allowlist.ts";
import { startServiceReconciler, type ServiceReconciler, type ServiceReconcilerOptions } from "./loop.ts";

/** This host's service reconciler, unless switched off; none (with a warning) where there is no /proc. */
export async function startServicesOfHost(options: {
  config: PlatformConfig;
  pool: Pool;
  host: string;
  connectionString: string | undefined;
  logger: Logger;
  /** LISTEN on the node's own session. */
  listen: SessionListen;
  /** Read and checked by prepareScheduler, before the node touched the database. */
  allowlist: Allowlist;
  overrides: boolean | Partial<ServiceReconcilerOptions> | undefined;
}): Promise<ServiceReconciler | null> {
  const { config } = options;
  if (options.overrides === false || !config.SCHEDULER_RECONCILE_SERVICES) return null;
  try {
    return await startServiceReconciler({
      pool: options.pool,
      host: options.host,
      logger: options.logger,
      connectionString: options.connectionString,
      listen: options.listen,
      intervalMs: config.SCHEDULER_RECONCILE_INTERVAL_MS,
      protectedPorts: config.SCHEDULER_PROTECTED_PORTS,
      onShutdown: config.SCHEDULER_SERVICES_ON_SHUTDOWN,
      logDir: config.SCHEDULER_SERVICES_LOG_DIR,
      policy: { stopGraceMs: config.SCHEDULER_SERVICES_STOP_GRACE_MS },
      allowlist: options.allowlist,
      ...(typeof options.overrides === "object" ? options.overrides : {}),
    });
  } catch (error) {
    if (!(error instanceof SchedulerError && error.code === "no_proc")) throw error;
    options.logger.warn({ error: error.message }, "service reconciler not started on this system");
    return null;
  }
}
