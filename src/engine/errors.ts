/**
 * The one error type a person reads: what went wrong and, where we know it,
 * how to fix it. `code` is stable for scripts; `exitCode` is what the CLI exits with.
 */
export class SchedulerError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(code: string, message: string, options: { hint?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SchedulerError";
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? 1;
  }

  /** The message with its hint, as printed for a person. */
  describe(): string {
    return this.hint ? `${this.message}\n  fix: ${this.hint}` : this.message;
  }
}

/** A payload that can never succeed: the job fails at once and is not retried. */
export class PermanentJobError extends SchedulerError {
  constructor(message: string) {
    super("invalid_payload", message);
    this.name = "PermanentJobError";
  }
}

export function errorMessage(error: unknown): string {
  if (error instanceof SchedulerError) return error.describe();
  if (error instanceof Error) return error.message;
  return String(error);
}

/** An error's stack without its first line (the message, logged beside it), or undefined. */
export function stackOf(error: unknown): string | undefined {
  const stack = error instanceof Error ? error.stack : undefined;
  return stack?.split("\n").slice(1).map((line) => line.trim()).join("\n") || undefined;
}
