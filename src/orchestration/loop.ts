// The per-host reconcile loop: a pass every few seconds (sooner while a service is starting
// or a back-off is about to end), at once on NOTIFY scheduler_services '<host>', and after a
// child we started exits by itself. Passes never overlap; requests that arrive during a pass
// are served by one pass right after it.
import type { Pool } from "../db/pool.ts";
import { errorMessage, SchedulerError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { ChildRegistry } from "./children.ts";
import { formatReply, listen, parseRequest, REQUEST_CHANNEL, RESULT_CHANNEL, type Listener } from "./notify.ts";
import { bootId } from "./proc.ts";
import { nextCheckInMs, reconcileHost, stopHostServices, type ReconcileContext } from "./reconcile.ts";
import { DEFAULT_INTERVAL_MS, DEFAULT_SHUTDOWN_POLICY, protectedPortSet, resolveLogDir, resolvePolicy, type ShutdownPolicy } from "./settings.ts";
import { changedSomething, emptyResult, type PassResult, type Policy } from "./types.ts";

export interface ServiceReconcilerOptions {
  pool: Pool;
  host: string;
  logger: Logger;
  /** SCHEDULER_RECONCILE_INTERVAL_MS, default 5000. */
  intervalMs?: number;
  /** SCHEDULER_PROTECTED_PORTS, default 5432,6432; the database's own port is always added. */
  protectedPorts?: number[];
  /** SCHEDULER_SERVICES_ON_SHUTDOWN: leave services running (default) or stop them. */
  onShutdown?: ShutdownPolicy;
  /** For the LISTEN connection and the database port; default the pool's. */
  connectionString?: string;
  /** SCHEDULER_SERVICES_LOG_DIR, default .data/services: one <name>.log per service. */
  logDir?: string;
  /** Back-off, time-outs and grace periods (tests shorten them). */
  policy?: Partial<Policy>;
}

export interface ServiceReconciler {
  /** Runs a pass that starts after this call (waiting for one in progress) and returns its result. */
  reconcileNow(): Promise<PassResult>;
  /** Ends the loop after the pass in progress; then applies the shutdown policy. */
  stop(): Promise<void>;
}

export async function startServiceReconciler(options: ServiceReconcilerOptions): Promise<ServiceReconciler> {
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  if (!Number.isFinite(intervalMs) || intervalMs < 100) {
    throw new SchedulerError("invalid_config", `the service reconcile interval must be at least 100 ms, got ${intervalMs}`, { hint: "set SCHEDULER_RECONCILE_INTERVAL_MS to e.g. 5000", exitCode: 2 });
  }
  const onShutdown = options.onShutdown ?? DEFAULT_SHUTDOWN_POLICY;
  if (onShutdown !== "leave-running" && onShutdown !== "stop") {
    throw new SchedulerError("invalid_config", `unknown services shutdown policy '${String(onShutdown)}': use leave-running or stop`, { hint: "set SCHEDULER_SERVICES_ON_SHUTDOWN to leave-running or stop", exitCode: 2 });
  }
  bootId(); // fails now, with a clear message, where there is no /proc
  const logger = options.logger.child({ component: "services", host: options.host });
  const connectionString = options.connectionString ?? options.pool.options.connectionString;

  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let current: Promise<PassResult> | null = null;
  let queued: Promise<PassResult> | null = null;
  let pendingRequests: string[] = [];

  const ctx: ReconcileContext = {
    pool: options.pool,
    host: options.host,
    logger,
    policy: resolvePolicy(options.policy),
    protectedPorts: protectedPortSet(options.protectedPorts, connectionString),
    logDir: resolveLogDir(options.logDir),
    children: new ChildRegistry(options.pool, logger, () => {
      if (!stopped) void requestPass();
    }),
  };

  const schedule = (ms: number) => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      void requestPass();
    }, ms);
  };

  const reply = async (requests: string[], result: PassResult) => {
    for (const requestId of requests) {
      await options.pool.query("select pg_notify($1, $2)", [RESULT_CHANNEL, formatReply(requestId, result)]).catch((error: unknown) => {
        logger.warn({ err: error }, "could not answer a reconcile request");
      });
    }
  };

  const runPass = async (): Promise<PassResult> => {
    const requests = pendingRequests;
    pendingRequests = [];
    let result: PassResult;
    let wait = intervalMs;
    try {
      const outcome = await reconcileHost(ctx);
      result = outcome.result;
      wait = nextCheckInMs(outcome.plans, intervalMs);
      if (result.failed.length > 0) logger.warn({ result }, "service reconcile pass had failures");
      else if (changedSomething(result)) logger.info({ result }, "services reconciled");
      if (result.skipped) logger.debug(result.skipped);
    } catch (error) {
      result = { ...emptyResult(options.host), failed: [{ name: "*", action: "none", error: errorMessage(error) }] };
      logger.error({ err: error }, "service reconcile pass failed; will retry");
    }
    await reply(requests, result);
    schedule(wait);
    return result;
  };

  /** A pass that starts after now: the next one if a pass is running, shared by all callers meanwhile. */
  const requestPass = (): Promise<PassResult> => {
    if (queued) return queued;
    if (!current) {
      current = runPass().finally(() => (current = null));
      return current;
    }
    const after = (previous: PassResult | null) => {
      queued = null;
      return stopped && previous ? previous : requestPass();
    };
    queued = current.then(after, () => after(null));
    return queued;
  };

  const listener: Listener = listen({
    pool: options.pool,
    connectionString,
    channel: REQUEST_CHANNEL,
    logger,
    onNotification(payload) {
      const request = parseRequest(payload);
      if (!request || request.host !== options.host || stopped) return;
      if (request.requestId) pendingRequests.push(request.requestId);
      void requestPass();
    },
    onReconnect: () => void requestPass(),
  });

  // the first pass runs once LISTEN is active, so no change made meanwhile goes unnoticed;
  // a database that does not answer does not hold the node up (the listener keeps retrying)
  const listening = await Promise.race([listener.ready.then(() => true), new Promise<boolean>((resolve) => setTimeout(resolve, 10_000, false).unref())]);
  if (!listening) logger.warn("the services listener is not connected yet; reconcile requests will work once it is");
  void requestPass();
  logger.info({ intervalMs, onShutdown, protectedPorts: [...ctx.protectedPorts], logDir: ctx.logDir }, "service reconciler started");

  return {
    reconcileNow() {
      if (stopped) return Promise.reject(new SchedulerError("reconciler_stopped", "the service reconciler has stopped"));
      return requestPass();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (timer) clearTimeout(timer);
      await listener.close();
      // a pass in progress finishes its actions: nothing is left half-stopped
      await (queued ?? current)?.catch(() => {});
      if (onShutdown === "stop") {
        const result = await stopHostServices(ctx).catch((error: unknown) => {
          logger.error({ err: error }, "stopping services at shutdown failed");
          return null;
        });
        if (result) logger.info({ result }, "services stopped at shutdown");
      } else {
        logger.info("service reconciler stopped; services left running (SCHEDULER_SERVICES_ON_SHUTDOWN=leave-running)");
      }
      ctx.children?.close();
    },
  };
}
