// Settings of the service reconciler, with their defaults, and the parsing the CLI and the
// runner share. The environment keys (read by src/platform/config.ts) are named in each comment.
import path from "node:path";
import { parseConnectionString } from "../../engine/db/connection-string.ts";
import { SchedulerError } from "../../engine/errors.ts";
import { DEFAULT_POLICY, DEFAULT_PROTECTED_PORTS, type Policy } from "./types.ts";

/** SCHEDULER_RECONCILE_INTERVAL_MS */
export const DEFAULT_INTERVAL_MS = 5000;
/** SCHEDULER_SERVICES_ON_SHUTDOWN */
export const SHUTDOWN_POLICIES = ["leave-running", "stop"] as const;
export type ShutdownPolicy = (typeof SHUTDOWN_POLICIES)[number];
export const DEFAULT_SHUTDOWN_POLICY: ShutdownPolicy = "leave-running";
/** SCHEDULER_SERVICES_LOG_DIR */
export const DEFAULT_LOG_DIR = ".data/services";

/** The database's own ports (every host of the connection string) are always protected, whatever the list says. */
export function databasePorts(connectionString: string | undefined): number[] {
  if (!connectionString) return [];
  try {
    return [...new Set(parseConnectionString(connectionString).hosts.map((host) => host.port))];
  } catch {
    return [];
  }
}

export function protectedPortSet(ports: readonly number[] | undefined, connectionString: string | undefined): Set<number> {
  const set = new Set(ports ?? DEFAULT_PROTECTED_PORTS);
  for (const port of databasePorts(connectionString)) set.add(port);
  return set;
}

export function resolvePolicy(overrides: Partial<Policy> = {}): Policy {
  const policy = { ...DEFAULT_POLICY, ...overrides };
  for (const [key, value] of Object.entries(policy)) {
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new SchedulerError("invalid_config", `service policy ${key} must be a non-negative number, got ${String(value)}`);
    }
  }
  if (policy.maxRapidFailures < 1) throw new SchedulerError("invalid_config", "service policy maxRapidFailures must be at least 1");
  return policy;
}

export function resolveLogDir(logDir: string | undefined): string {
  return path.resolve(logDir ?? DEFAULT_LOG_DIR);
}
