import type { ParseArgsConfig } from "node:util";
import type { Config } from "../config.ts";
import type { Pool } from "../engine/db/pool.ts";
import type { Logger } from "../engine/log.ts";
import { SchedulerError } from "../engine/errors.ts";

export interface CliContext {
  config: Config;
  logger: Logger;
  /** A pool on the configured database (embedded one started or reused as needed); closed by main. */
  pool(): Promise<Pool>;
  /** Writes a line to stdout. */
  print(text: string): void;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * One CLI command. `main.ts` parses argv with node:util parseArgs using
 * `options`, prints `usage` for --help, and exits with what `run` returns.
 * Throw SchedulerError (exitCode 2 for usage errors) for messages a person reads.
 */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  options?: NonNullable<ParseArgsConfig["options"]>;
  /** How many positional arguments it takes (default none); more are refused. */
  maxPositionals?: number;
  /** It only reads the database: it may run on a standby (DATABASE_URL's target_session_attrs). */
  readsOnly?: boolean;
  /** Sub-commands, e.g. `services list`; when present, `run` is not called. */
  subcommands?: Command[];
  run(ctx: CliContext, args: ParsedArgs): Promise<number>;
}

/** A usage error (exit 2), with the command's usage text. */
export function usageError(message: string, usage: string): SchedulerError {
  return new SchedulerError("usage", `${message}\n\n${usage}`, { exitCode: 2 });
}

/** A `--limit` value: a whole number from 1 to `max`, `fallback` when not given (exit 2 otherwise). */
export function limitOption(value: string | boolean | undefined, fallback: number, max: number): number {
  const limit = Number(value ?? fallback);
  if (!Number.isInteger(limit) || limit < 1 || limit > max) {
    throw new SchedulerError("bad_limit", `--limit must be a whole number from 1 to ${max}, got '${value}'`, { exitCode: 2 });
  }
  return limit;
}
