import os from "node:os";
import { z } from "zod";
import { SchedulerError } from "./errors.ts";

const integer = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const jobList = z
  .string()
  .transform((text) => text.split(",").map((name) => name.trim()).filter((name) => name.length > 0))
  .pipe(z.array(z.string().regex(/^[_a-zA-Z][_a-zA-Z0-9:/-]*$/, "a task name")));

/** Every setting comes from the environment; this schema is the one list of them. */
export const configSchema = z.object({
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "a postgres:// connection string")
    .optional(),
  SCHEDULER_DATA_DIR: z.string().min(1).default(".data/postgres"),
  SCHEDULER_EMBEDDED_PORT: integer(1, 65535).default(54329),
  SCHEDULER_CRONTAB: z.string().min(1).default("./crontab"),
  /** Folder of task files; default this package's tasks/. */
  SCHEDULER_TASKS_DIR: z.string().min(1).optional(),
  SCHEDULER_CONCURRENCY: integer(1, 100).default(4),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  SCHEDULER_HOST: z.string().min(1).default(os.hostname()),
  SCHEDULER_HISTORY_RETENTION_DAYS: integer(1, 3650).default(30),
  SCHEDULER_BOOTSTRAP_JOBS: jobList.default(["cleanup_inactive_sessions"]),
  SCHEDULER_CRONTAB_POLL_MS: integer(100, 60_000).default(1000),
  SCHEDULER_SHUTDOWN_GRACE_MS: integer(0, 3_600_000).default(30_000),
  /** Cluster timing (src/cluster): heartbeat, silence after which a node is dead, rescue pass, database give-up. */
  SCHEDULER_HEARTBEAT_MS: integer(100, 60_000).default(5000),
  SCHEDULER_NODE_DEAD_AFTER_MS: integer(300, 3_600_000).default(30_000),
  SCHEDULER_RESCUE_INTERVAL_MS: integer(100, 600_000).default(5000),
  SCHEDULER_DB_GIVE_UP_MS: integer(1000, 86_400_000).default(300_000),
  /** Service reconciler (src/orchestration): on/off for this node, pass interval, safety and shutdown policy. */
  SCHEDULER_RECONCILE_SERVICES: z.enum(["true", "false"]).default("true").transform((value) => value === "true"),
  SCHEDULER_RECONCILE_INTERVAL_MS: integer(100, 3_600_000).default(5000),
  SCHEDULER_PROTECTED_PORTS: z
    .string()
    .regex(/^\s*\d{1,5}(\s*,\s*\d{1,5})*\s*$/, "a comma-separated list of ports, e.g. 5432,6432")
    .default("5432,6432")
    .transform((text) => text.split(",").map((port) => Number(port.trim())))
    .pipe(z.array(z.number().int().min(1).max(65535))),
  SCHEDULER_SERVICES_ON_SHUTDOWN: z.enum(["leave-running", "stop"]).default("leave-running"),
  SCHEDULER_SERVICES_LOG_DIR: z.string().min(1).default(".data/services"),
  SCHEDULER_SERVICES_STOP_GRACE_MS: integer(0, 600_000).default(10_000),
});

export type Config = z.infer<typeof configSchema>;

/**
 * Reads the configuration. Every bad key is named in one error, with what it
 * expects, so a person fixes them all in one go (the CLI exits 2).
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const relevant: Record<string, string> = {};
  for (const key of Object.keys(configSchema.shape)) {
    const value = env[key];
    // An empty value means "unset", except for a list, where it means "none".
    if (value !== undefined && (value !== "" || key === "SCHEDULER_BOOTSTRAP_JOBS")) relevant[key] = value;
  }
  const parsed = configSchema.safeParse(relevant);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? "?");
      return `  ${key}=${JSON.stringify(relevant[key] ?? "")}: ${issue.message}`;
    });
    throw new SchedulerError("invalid_config", `invalid configuration:\n${lines.join("\n")}`, {
      hint: "set these environment variables to valid values (see the configuration table in README.md)",
      exitCode: 2,
    });
  }
  return parsed.data;
}
