// Decide, with the guards around the decision table: protected ports, processes that are
// not provably ours, incomplete rows,
// crash counting, back-off, start time-outs and the `failed` state. Pure.
import { REFUSAL_PREFIX } from "./allowlist.ts";
import { decide, restartDelayMs } from "./decide.ts";
import type { Observation } from "./observe.ts";
import type { Policy, RecordedStatus, RuntimeStatus, ServiceAction, ServiceRow } from "./types.ts";

export interface PlanContext {
  now: Date;
  policy: Policy;
  protectedPorts: ReadonlySet<number>;
}

/** Observed columns the pass writes for a row before it acts (one set-based statement). */
export interface ObservedUpdate {
  name: string;
  status: RecordedStatus;
  consecutive_failures: number;
  backoff_until: Date | null;
  last_error: string | null;
}

export interface Plan {
  row: ServiceRow;
  observation: Observation;
  runtime: RuntimeStatus;
  /** The decision table's cell, before guards. */
  tableAction: ServiceAction;
  action: ServiceAction;
  reason: string;
  update: ObservedUpdate | null;
}

const TOUCHES_PROCESSES = new Set<ServiceAction>(["start", "stop", "restart", "cleanup-process"]);
const STARTS = new Set<ServiceAction>(["start", "restart"]);

export function planService(row: ServiceRow, observation: Observation, ctx: PlanContext): Plan {
  const { runtime } = observation;
  const { now, policy } = ctx;
  const tableAction = decide(row.desired_status, runtime);
  let action = tableAction;
  let reason = `${row.desired_status} and ${runtime}: ${observation.detail}`;
  let status: RecordedStatus = runtime;
  let failures = row.consecutive_failures;
  let backoffUntil = row.backoff_until;
  let lastError = row.last_error;

  const fail = (message: string) => {
    failures += 1;
    lastError = message;
    backoffUntil = new Date(now.getTime() + restartDelayMs(failures, policy));
    if (failures >= policy.maxRapidFailures) status = "failed";
  };

  if (row.desired_status === "enabled") {
    if (observation.processLost) {
      const exit = row.last_exit_signal ? ` (killed by ${row.last_exit_signal})` : row.last_exit_code !== null ? ` (exit code ${row.last_exit_code})` : "";
      fail(`process exited unexpectedly${exit}: ${observation.detail}`);
    } else if (runtime === "starting" && row.status === "starting" && now.getTime() - row.status_changed_at.getTime() > policy.startTimeoutMs) {
      fail(`did not open port ${row.port} within ${Math.round(policy.startTimeoutMs / 1000)} s of starting`);
      action = "stop"; // the next start waits for the back-off
      reason = `start timed out: ${observation.detail}`;
    } else if (runtime === "running" && row.status === "running" && failures > 0 && now.getTime() - row.status_changed_at.getTime() >= policy.healthyAfterMs) {
      failures = 0; // a healthy stretch ends the crash loop
      backoffUntil = null;
    }
  }

  if (row.status === "failed" && runtime !== "running" && runtime !== "starting") status = "failed";

  if (row.port !== null && ctx.protectedPorts.has(row.port) && TOUCHES_PROCESSES.has(action)) {
    lastError = `port ${row.port} is protected (database, scheduler): the reconciler will not start or signal anything on it`;
    reason = lastError;
    action = "none";
  } else if (observation.notOurs && TOUCHES_PROCESSES.has(action)) {
    lastError = `${observation.notOurs}; if it is this service's process, stop it by hand, and if the row is wrong, delete it`;
    reason = lastError;
    action = "none";
  } else if (STARTS.has(action) && (!row.command || row.port === null)) {
    lastError = `cannot start: the row has no ${row.command ? "port" : "command"}`;
    reason = lastError;
    action = "none";
  } else if (STARTS.has(action) && status === "failed") {
    reason = lastError?.startsWith(REFUSAL_PREFIX)
      ? "refused by this host's SCHEDULER_SERVICES_ALLOWED_COMMANDS (see last_error); left alone until its row changes or the scheduler restarts"
      : `failed after ${failures} rapid failure(s); left alone until its desired status or command changes`;
    action = "none";
  } else if ((STARTS.has(action) || action === "cleanup-process") && backoffUntil && backoffUntil > now) {
    reason = `waiting until ${backoffUntil.toISOString()} (back-off after ${failures} failure(s))`;
    action = "none";
  }

  const changed =
    status !== row.status ||
    failures !== row.consecutive_failures ||
    lastError !== row.last_error ||
    (backoffUntil?.getTime() ?? null) !== (row.backoff_until?.getTime() ?? null);
  const update = changed ? { name: row.name, status, consecutive_failures: failures, backoff_until: backoffUntil, last_error: lastError } : null;
  return { row, observation, runtime, tableAction, action, reason, update };
}
