// The per-host reconcile loop: a pass every few seconds (sooner while a service is starting
// or a back-off is about to end), at once on NOTIFY scheduler_services '<host>', and after a
// child we started exits by itself. Passes never overlap; requests that arrive during a pass
// are served by one pass right after it.
//
// An idle host costs the database next to nothing: while its services are steady, a timed
// pass first plans from the rows the last full pass read (the process table and the ports
// are local), and touches the database only when that plan has something to record or do,
// or the rows are older than STEADY_ROWS_MAX_AGE_MS. Every change of a row notifies the
// host (the services_spec_changed trigger), which always gets a full pass.
import type { Pool } from "../../engine/db/pool.ts";
import { errorMessage, SchedulerError } from "../../engine/errors.ts";
import type { Logger } from "../../engine/log.ts";
import { multiCallEntries } from "./allowed-program.ts";
import { ALLOWLIST_VARIABLE, NOTHING_ALLOWED, REFUSAL_PREFIX, unusableEntries, type Allowlist } from "./allowlist.ts";
import { ChildRegistry } from "./children.ts";
import type { SessionListen } from "../../engine/pack.ts";
import { formatReply, listen, listenOnSession, parseRequest, REQUEST_CHANNEL, RESULT_CHANNEL, type Listener } from "./notify.ts";
import { bootId } from "./proc.ts";
import { nextCheckInMs, planHost, reconcileHost, stopHostServices, type ReconcileContext } from "./reconcile.ts";
import { DEFAULT_INTERVAL_MS, DEFAULT_SHUTDOWN_POLICY, protectedPortSet, resolveLogDir, resolvePolicy, type ShutdownPolicy } from "./settings.ts";
import { retryRefused } from "./store.ts";
import { changedSomething, emptyResult, type PassResult, type Policy, type ServiceRow } from "./types.ts";
import type { Plan } from "./plan.ts";

/** How long a timed pass may trust the rows of the last full pass. */
export const STEADY_ROWS_MAX_AGE_MS = 60_000;

const steady = (plans: Plan[]) => plans.every((plan) => plan.update === null && plan.action === "none");

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
  /** LISTEN on the node's own session instead of a connection of the reconciler's own. */
  listen?: SessionListen;
  /** SCHEDULER_SERVICES_LOG_DIR, default .data/services: one <name>.log per service. */
  logDir?: string;
  /** Back-off, time-outs and grace periods (tests shorten them). */
  policy?: Partial<Policy>;
  /** SCHEDULER_SERVICES_ALLOWED_COMMANDS (or its file): the programs services may run. Default: none. */
  allowlist?: Allowlist;
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
  const allowlist = options.allowlist ?? NOTHING_ALLOWED;
  if (allowlist.entries.length === 0) logger.warn("SCHEDULER_SERVICES_ALLOWED_COMMANDS is not set (or empty): no service will be started on this host");
  const unusable = unusableEntries(allowlist);
  if (unusable.length > 0) logger.warn({ entries: unusable }, "SCHEDULER_SERVICES_ALLOWED_COMMANDS entries that match nothing (missing, or a directory without its trailing / or a file with one)");
  const multiCall = multiCallEntries(allowlist.entries, ALLOWLIST_VARIABLE);
  if (multiCall.length > 0) {
    logger.warn({ entries: multiCall }, "SCHEDULER_SERVICES_ALLOWED_COMMANDS entries that resolve to a multi-call binary (busybox, toybox, or one file under several names): services using them are refused unless the list names the binary's real path");
  }

  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let current: Promise<PassResult> | null = null;
  let queued: Promise<PassResult> | null = null;
  let pendingRequests: string[] = [];
  /** Rows of the last full pass that found nothing to record or do, and when it read them. */
  let steadyRows: { rows: ServiceRow[]; readAt: number } | null = null;
  /** Set by anything but the timer: the next pass reads the database. */
  let fullPassWanted = true;

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
    allowlist,
  };

  const schedule = (ms: number) => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      void requestPass({ timed: true });
    }, ms);
  };

  const reply = async (requests: string[], result: PassResult) => {
    for (const requestId of requests) {
      await options.pool.query("select pg_notify($1, $2)", [RESULT_CHANNEL, formatReply(requestId, result)]).catch((error: unknown) => {
        logger.warn({ err: error }, "could not answer a reconcile request");
      });
    }
  };

  /** A timed pass over steady rows: the plan alone, or null when the database must be read. */
  const quietPass = async (): Promise<PassResult | null> => {
    if (fullPassWanted || !steadyRows || Date.now() - steadyRows.readAt >= STEADY_ROWS_MAX_AGE_MS) return null;
    const startedAt = Date.now();
    const plans = await planHost(ctx, steadyRows.rows);
    if (!steady(plans)) return null;
    schedule(nextCheckInMs(plans, intervalMs));
    return { ...emptyResult(options.host), services: plans.length, durationMs: Date.now() - startedAt };
  };

  const runPass = async (): Promise<PassResult> => {
    const requests = pendingRequests;
    pendingRequests = [];
    let result: PassResult;
    let wait = intervalMs;
    try {
      if (requests.length === 0) {
        const quiet = await quietPass();
        if (quiet) return quiet;
      }
      fullPassWanted = false;
      const outcome = await reconcileHost(ctx);
      result = outcome.result;
      steadyRows = !result.skipped && steady(outcome.plans) ? { rows: outcome.plans.map((plan) => plan.row), readAt: Date.now() } : null;
      wait = nextCheckInMs(outcome.plans, intervalMs);
      if (result.failed.length > 0) logger.warn({ result }, "service reconcile pass had failures");
      else if (changedSomething(result)) logger.info({ result }, "services reconciled");
      if (result.skipped) logger.debug(result.skipped);
    } catch (error) {
      steadyRows = null;
      result = { ...emptyResult(options.host), failed: [{ name: "*", action: "none", error: errorMessage(error) }] };
      logger.error({ err: error }, "service reconcile pass failed; will retry");
    }
    await reply(requests, result);
    schedule(wait);
    return result;
  };

  /**
   * A pass that starts after now: the next one if a pass is running, shared by all callers
   * meanwhile. Only the timer's may be quiet; anyone else's reads the database.
   */
  const requestPass = (how: { timed?: boolean } = {}): Promise<PassResult> => {
    if (!how.timed) fullPassWanted = true;
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

  const listener: Listener = (options.listen ? listenOnSession.bind(null, options.listen) : listen)({
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
  // a restart is how a changed allowlist takes effect: what it refused before is tried once more
  const retried = await retryRefused(options.pool, options.host, REFUSAL_PREFIX).catch((error: unknown) => {
    logger.warn({ err: error }, "could not reset the services the allowlist refused; they stay failed");
    return [];
  });
  if (retried.length > 0) logger.info({ services: retried }, "services refused by the allowlist before are checked again");
  const listening = await Promise.race([listener.ready.then(() => true), new Promise<boolean>((resolve) => setTimeout(resolve, 10_000, false).unref())]);
  if (!listening) logger.warn("the services listener is not connected yet; reconcile requests will work once it is");
  void requestPass();
  logger.info({ intervalMs, onShutdown, protectedPorts: [...ctx.protectedPorts], logDir: ctx.logDir, allowedCommands: allowlist.entries, allowedEnv: allowlist.env ?? [] }, "service reconciler started");

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
