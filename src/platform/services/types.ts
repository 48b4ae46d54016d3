// The vocabulary of service orchestration: what a `services` row holds, what we observe
// about its process, what we decide to do, and what a reconcile pass reports.

export const DESIRED_STATUSES = ["enabled", "disabled"] as const;
export type DesiredStatus = (typeof DESIRED_STATUSES)[number];

/** What the process table and the port say about a service right now (docs/services.md). */
export const RUNTIME_STATUSES = ["running", "starting", "stopped", "crashed", "orphaned"] as const;
export type RuntimeStatus = (typeof RUNTIME_STATUSES)[number];

/** What the row's `status` column may hold: a runtime status, or `failed` (crash loop, left alone). */
export type RecordedStatus = RuntimeStatus | "failed";

export const SERVICE_ACTIONS = ["none", "start", "stop", "restart", "cleanup-db", "cleanup-process"] as const;
export type ServiceAction = (typeof SERVICE_ACTIONS)[number];

export const MODULE_NAMES = ["agent", "mcp", "api"] as const;
export type ModuleName = (typeof MODULE_NAMES)[number];

/** One `services` row as the reconciler reads it. */
export interface ServiceRow {
  name: string;
  module_name: string;
  host: string;
  command: string | null;
  args: string[];
  cwd: string | null;
  env: Record<string, string>;
  port: number | null;
  desired_status: DesiredStatus;
  status: RecordedStatus;
  pid: number | null;
  process_start_ticks: string | null; // bigint arrives as text
  boot_id: string | null;
  instance_id: string | null;
  restart_count: number;
  consecutive_failures: number;
  last_exit_code: number | null;
  last_exit_signal: string | null;
  last_error: string | null;
  backoff_until: Date | null;
  started_at: Date | null;
  stopped_at: Date | null;
  status_changed_at: Date;
  /** The row version (xmin): the pass writes its observations only if it has not moved since. */
  version: string;
}

/** How crash loops are handled and how long things may take. Every field has a default. */
export interface Policy {
  /** First restart delay after a failure; doubles per consecutive failure. */
  backoffBaseMs: number;
  /** Ceiling of the restart delay. */
  backoffMaxMs: number;
  /** This many failures without a healthy stretch in between mark the service `failed`. */
  maxRapidFailures: number;
  /** Running this long with an answering port clears the failure count. */
  healthyAfterMs: number;
  /** A started process that has not opened its port by then is stopped and counted as a failure. */
  startTimeoutMs: number;
  /** SIGTERM, then this long before SIGKILL. */
  stopGraceMs: number;
  /** After the process is gone, how long to wait for its port to close. */
  portReleaseMs: number;
  /** How long to wait before re-checking a port held by a process we did not start. */
  conflictRetryMs: number;
}

export const DEFAULT_POLICY: Policy = {
  backoffBaseMs: 1000,
  backoffMaxMs: 5 * 60_000,
  maxRapidFailures: 5,
  healthyAfterMs: 60_000,
  startTimeoutMs: 30_000,
  stopGraceMs: 10_000,
  portReleaseMs: 5000,
  conflictRetryMs: 30_000,
};

export const DEFAULT_PROTECTED_PORTS: readonly number[] = [5432, 6432];

export interface ActionFailure {
  name: string;
  action: ServiceAction;
  error: string;
}

/** What one reconcile pass did on one host. */
export interface PassResult {
  host: string;
  started: number;
  stopped: number;
  restarted: number;
  cleanedUp: number;
  failed: ActionFailure[];
  /** Every action attempted, for logs and the CLI. */
  actions: { name: string; action: ServiceAction; runtime: RuntimeStatus; outcome: "done" | "failed" | "refused" }[];
  /** Set when the pass did nothing because another node of this host held the lock. */
  skipped: string | null;
  services: number;
  durationMs: number;
}

export function emptyResult(host: string): PassResult {
  return { host, started: 0, stopped: 0, restarted: 0, cleanedUp: 0, failed: [], actions: [], skipped: null, services: 0, durationMs: 0 };
}

export function changedSomething(result: PassResult): boolean {
  return result.actions.length > 0;
}
