import net from "node:net";
import os from "node:os";
import { z } from "zod";
import { zoneProblem } from "./crontab/zone.ts";
import { ConnectionStringError, maskConnectionString, parseConnectionString } from "./db/connection-string.ts";
import { SchedulerError } from "./errors.ts";
import { parseHttpAddr } from "./http/address.ts";
import { normalizeHost } from "./http/host-check.ts";

export const integer = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const jobList = z
  .string()
  .transform((text) => text.split(",").map((name) => name.trim()).filter((name) => name.length > 0))
  .pipe(z.array(z.string().regex(/^[_a-zA-Z][_a-zA-Z0-9:/-]*$/, "a task name")));

/** A host name (`scheduler.ops.svc`) or an IP address, without a port. */
export const hostName = z
  .string()
  .refine((text) => net.isIP(normalizeHost(text)) !== 0 || /^[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?\.?$/i.test(text), "a host name or IP address, without a port (e.g. scheduler.ops.svc.cluster.local)");

const hostList = z
  .string()
  .transform((text) => text.split(",").map((name) => name.trim()).filter((name) => name.length > 0))
  .pipe(z.array(hostName));

/** At least 16 characters without spaces, so that it cannot be guessed by trying a few words. */
export const httpToken = z
  .string()
  .min(16, "at least 16 characters (e.g. `openssl rand -hex 24`)")
  .max(512, "at most 512 characters")
  .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces");

/**
 * The engine's settings, all from the environment. A pack has its own (the platform's:
 * src/platform/config.ts); src/config.ts joins them for the CLI.
 */
export const engineSettings = {
  /** A libpq connection string, URL or keyword form, with one host or several (db/connection-string.ts). */
  DATABASE_URL: z
    .string()
    .superRefine((text, ctx) => {
      try {
        parseConnectionString(text, { label: "" });
      } catch (error) {
        if (!(error instanceof ConnectionStringError)) throw error;
        ctx.addIssue({ code: "custom", message: `${error.problem}; e.g. postgres://user:password@host1:5432,host2:5432/database?target_session_attrs=read-write, or host=host1,host2 dbname=database` });
      }
    })
    .optional(),
  SCHEDULER_DATA_DIR: z.string().min(1).default(".data/postgres"),
  SCHEDULER_EMBEDDED_PORT: integer(1, 65535).default(54329),
  /** Crontab file; default the platform's (the package's `crontab`), none for the engine alone. */
  SCHEDULER_CRONTAB: z.string().min(1).optional(),
  /** Folder of task files; default the platform's (the package's tasks/), none for the engine alone. */
  SCHEDULER_TASKS_DIR: z.string().min(1).optional(),
  SCHEDULER_CONCURRENCY: integer(1, 100).default(4),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  SCHEDULER_HOST: z.string().min(1).default(os.hostname()),
  SCHEDULER_HISTORY_RETENTION_DAYS: integer(1, 3650).default(30),
  /** Jobs queued once per start; default the platform's (cleanup_inactive_sessions). */
  SCHEDULER_BOOTSTRAP_JOBS: jobList.optional(),
  SCHEDULER_CRONTAB_POLL_MS: integer(100, 60_000).default(1000),
  /** The time zone of crontab lines without `?tz=` (IANA name). */
  SCHEDULER_TIMEZONE: z
    .string()
    .default("UTC")
    .superRefine((zone, ctx) => {
      const problem = zoneProblem(zone);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }),
  /** How often idle workers look for jobs that no NOTIFY announced (a fallback; retries wake their node). */
  SCHEDULER_POLL_INTERVAL_MS: integer(100, 600_000).default(30_000),
  SCHEDULER_SHUTDOWN_GRACE_MS: integer(0, 3_600_000).default(30_000),
  /** Cluster timing (src/cluster): heartbeat, silence after which a node is dead, rescue pass, database give-up. */
  SCHEDULER_HEARTBEAT_MS: integer(100, 60_000).default(5000),
  SCHEDULER_NODE_DEAD_AFTER_MS: integer(300, 3_600_000).default(30_000),
  SCHEDULER_RESCUE_INTERVAL_MS: integer(100, 600_000).default(5000),
  SCHEDULER_DB_GIVE_UP_MS: integer(1000, 86_400_000).default(300_000),
  /**
   * Where the node serves /healthz, /readyz, /metrics (src/engine/http): host:port, or `off`.
   * No default here (the runner uses 127.0.0.1:9464): unset is told apart from asked for.
   */
  SCHEDULER_HTTP_ADDR: z
    .string()
    .superRefine((text, ctx) => {
      const parsed = parseHttpAddr(text);
      if (parsed && "problem" in parsed) ctx.addIssue({ code: "custom", message: parsed.problem });
    })
    .optional(),
  /**
   * Enables the dashboard's actions (run now, dry run, pause, resume) for requests bearing it
   * (src/engine/http/guard.ts); unset, the endpoint is read-only.
   */
  SCHEDULER_HTTP_TOKEN: httpToken.optional(),
  /**
   * Names (or addresses) by which the HTTP endpoint is reached besides this machine's own
   * addresses and localhost, comma-separated: a Kubernetes service, a proxy. A request whose
   * Host header names anything else is refused (421): DNS rebinding (src/engine/http/host-check.ts).
   */
  SCHEDULER_HTTP_ALLOWED_HOSTS: hostList.default([]),
};

export type EngineConfig = z.infer<z.ZodObject<typeof engineSettings>>;

const SECRET_URLS = new Set(["DATABASE_URL", "TEST_DATABASE_URL"]);

/** An empty value means "unset", except for these lists, where it means "none". */
const EMPTY_MEANS_NONE = new Set(["SCHEDULER_BOOTSTRAP_JOBS"]);

/**
 * Reads the settings of `shape` from the environment. Every bad key is named in one error,
 * with what it expects, so a person fixes them all in one go (the CLI exits 2).
 */
export function readSettings<S extends z.ZodRawShape>(shape: S, env: NodeJS.ProcessEnv = process.env): z.infer<z.ZodObject<S>> {
  const schema = z.object(shape);
  const relevant: Record<string, string> = {};
  for (const key of Object.keys(shape)) {
    const value = env[key];
    if (value !== undefined && (value !== "" || EMPTY_MEANS_NONE.has(key))) relevant[key] = value;
  }
  const parsed = schema.safeParse(relevant);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? "?");
      // A connection string is shown without its password.
      const shown = SECRET_URLS.has(key) ? maskConnectionString(relevant[key] ?? "") : (relevant[key] ?? "");
      return `  ${key}=${JSON.stringify(shown)}: ${issue.message}`;
    });
    throw new SchedulerError("invalid_config", `invalid configuration:\n${lines.join("\n")}`, {
      hint: "set these environment variables to valid values (see the configuration table in README.md)",
      exitCode: 2,
    });
  }
  return parsed.data;
}

export function loadEngineConfig(env: NodeJS.ProcessEnv = process.env): EngineConfig {
  return readSettings(engineSettings, env);
}
