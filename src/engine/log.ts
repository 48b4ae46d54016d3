import { Logger as GraphileLogger, type LogLevel } from "graphile-worker";
import { createRequire } from "node:module";
import pino, { type Logger } from "pino";

export type { Logger };

/**
 * Standard error, written synchronously. A terminal that closed (SIGHUP) or a reader that went
 * away must not crash a node in the middle of its shutdown: the lines are lost, not the state.
 */
function stderrStream() {
  const stream = pino.destination({ dest: 2, sync: true });
  stream.on("error", () => {});
  return stream;
}

/**
 * JSON logs for machines; readable lines when a person watches a terminal (formatted in this
 * thread: a worker-thread transport dies with the terminal and takes later log calls with it).
 * Logs go to stderr so that `--json` output on stdout stays parseable.
 */
export function createLogger(level: string = "info", pretty = process.stderr.isTTY === true): Logger {
  if (pretty) {
    // Loaded only for a terminal: a node logging JSON never pays for the formatter.
    const pinoPretty = createRequire(import.meta.url)("pino-pretty") as typeof import("pino-pretty");
    return pino({ level }, pinoPretty({ destination: stderrStream(), translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname", sync: true }));
  }
  return pino({ level }, stderrStream());
}

const levels: Record<LogLevel, "error" | "warn" | "info" | "debug"> = {
  error: "error",
  warning: "warn",
  info: "info",
  debug: "debug",
};

/** graphile-worker's logs, through our pino logger, with its scope as fields. */
export function graphileLoggerFor(logger: Logger): GraphileLogger {
  return new GraphileLogger((scope) => {
    const child = logger.child({ component: "graphile-worker", ...compactScope(scope) });
    return (level, message, meta) => {
      const error = meta && typeof meta === "object" && "error" in meta ? (meta as { error: unknown }).error : undefined;
      // A run that waits for its job's lock goes back to the queue by "failing" (src/engine/jobs/execute.ts):
      // routine, not an error.
      // A failed attempt is logged by the job wrapper (src/engine/jobs/execute.ts, plain.ts), with
      // its stack once: graphile-worker's report of it (message, stack and the error again) is debug.
      const quiet = (error as { code?: unknown } | undefined)?.code === "run_deferred" || (meta as { failure?: unknown } | undefined)?.failure === true;
      const method = quiet ? "debug" : (levels[level] ?? "info");
      if (error !== undefined) child[method]({ err: error }, message);
      else child[method](message);
    };
  });
}

function compactScope(scope: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(scope)) if (value !== undefined) out[key] = value;
  return out;
}
