import { parseCrontab, type ParsedCronItem } from "graphile-worker";
import JSON5 from "json5";
import { SchedulerError } from "../errors.ts";
import { cronFieldsOf, type CronFields } from "../graphile/internals.ts";

// Our crontab is graphile-worker's format, parsed by graphile-worker itself, line by
// line so that every bad line is reported at once. On top we add what an operator
// expects: task names checked against the task files, each entry's payload checked against
// its job's schema, a description from the comment above each entry, and safe per-entry
// defaults (see withDefaults).

export type { CronFields };

/** What the parser checks entries against: the tasks a node can run. */
export interface TaskCatalog {
  names(): ReadonlySet<string>;
  /** A problem with an entry's payload for this task, or null when it is acceptable. */
  checkPayload(task: string, payload: Record<string, unknown>): string | null;
}

export interface CrontabEntry {
  line: number;
  identifier: string;
  task: string;
  /** The five time fields as written. */
  schedule: string;
  description: string | null;
  payload: Record<string, unknown> | null;
  fields: CronFields;
  /** What graphile-worker's cron runs (our defaults applied). */
  item: ParsedCronItem;
}

export interface CrontabProblem {
  line: number;
  message: string;
}

export interface ParseResult {
  entries: CrontabEntry[];
  problems: CrontabProblem[];
}

/** Parses crontab text; problems are collected, not thrown, so all are reported at once. */
export function parseCrontabText(text: string, catalog?: TaskCatalog): ParseResult {
  const knownTasks = catalog?.names();
  const lines = text.split(/\r?\n/);
  const entries: CrontabEntry[] = [];
  const problems: CrontabProblem[] = [];
  let comments: string[] = [];
  lines.forEach((raw, index) => {
    const lineNumber = index + 1;
    const line = raw.trim();
    if (line === "") {
      comments = [];
      return;
    }
    if (line.startsWith("#")) {
      comments.push(line.replace(/^#+\s?/, ""));
      return;
    }
    const description = comments.length > 0 ? comments.join(" ") : null;
    comments = [];
    let item: ParsedCronItem;
    try {
      // Padding keeps graphile-worker's own messages on the right line number.
      const parsed = parseCrontab("\n".repeat(index) + line);
      item = parsed[0]!;
    } catch (error) {
      problems.push({ line: lineNumber, message: explainBadLine(line, lineNumber, (error as Error).message) });
      return;
    }
    if (knownTasks && !knownTasks.has(item.task)) {
      problems.push({
        line: lineNumber,
        message: `task '${item.task}' has no task file (expected tasks/${item.task}.ts); known tasks: ${[...knownTasks].sort().join(", ") || "(none)"}`,
      });
      return;
    }
    // graphile-worker's line pattern only takes `{...}`, so a payload is always an object.
    const payload = (item.payload as Record<string, unknown> | null) ?? null;
    const payloadProblem = catalog?.checkPayload(item.task, payload ?? {});
    if (payloadProblem) {
      problems.push({ line: lineNumber, message: item.identifier === item.task ? payloadProblem : `entry '${item.identifier}': ${payloadProblem}` });
      return;
    }
    const clash = entries.find((entry) => entry.identifier === item.identifier);
    if (clash) {
      problems.push({
        line: lineNumber,
        message: `identifier '${item.identifier}' is already used on line ${clash.line}; add '?id=<unique name>' to one of them`,
      });
      return;
    }
    entries.push({
      line: lineNumber,
      identifier: item.identifier,
      task: item.task,
      schedule: line.split(/\s+/).slice(0, 5).join(" "),
      description,
      payload,
      fields: cronFieldsOf(item),
      item: withDefaults(item),
    });
  });
  return { entries, problems };
}

/** Parses and throws one error listing every problem, with file and line. */
export function parseCrontabOrThrow(text: string, source: string, catalog?: TaskCatalog): CrontabEntry[] {
  const { entries, problems } = parseCrontabText(text, catalog);
  if (problems.length > 0) {
    const lines = problems.map((problem) => `  ${source}:${problem.line}: ${problem.message}`);
    throw new SchedulerError("invalid_crontab", `crontab ${source} has ${problems.length} problem(s):\n${lines.join("\n")}`, {
      hint: "fix these lines; the format is graphile-worker's: 'MIN HOUR DOM MON DOW task ?opts {payload}' (UTC)",
      exitCode: 2,
    });
  }
  return entries;
}

/**
 * graphile-worker says only "Invalid command specification" when a line's payload is cut
 * short or malformed (its pattern wants `{...}` at the end of the line); the JSON5 parser's
 * own message, with the line, tells a person what is wrong.
 */
function explainBadLine(line: string, lineNumber: number, message: string): string {
  if (!/^Invalid command specification/.test(message)) return message;
  const brace = line.indexOf("{");
  if (brace >= 0) {
    try {
      JSON5.parse(line.slice(brace));
    } catch (error) {
      return `Failed to parse JSON5 payload on line ${lineNumber} of crontab: ${(error as Error).message}`;
    }
  }
  return `${message.replace(/\.$/, "")}: expected 'MIN HOUR DOM MON DOW task ?options {payload}', where the payload, if any, is a JSON5 object at the end of the line`;
}

/**
 * Defaults that make each entry safe to run on many nodes:
 * - queue = the task: graphile-worker runs one job of a queue at a time, so runs of a
 *   task never overlap (the job wrapper's advisory lock covers jobs added without it);
 * - jobKey = the identifier, mode replace: while a run is in progress at most one more
 *   waits; a later tick replaces the waiting one instead of piling up. Entries with
 *   `?fill=` keep every backfilled tick, so they get no jobKey;
 * - at most 3 attempts: the next tick comes anyway, 25 retries over days help nobody;
 * - `_schedule` in the payload, so the run is recorded under the entry's identifier.
 * A line's own `?queue=`, `?jobKey=` or `?max=` wins.
 */
function withDefaults(item: ParsedCronItem): ParsedCronItem {
  const options = { ...item.options };
  options.queueName ??= item.task;
  if (options.jobKey === undefined && options.backfillPeriod === 0) {
    options.jobKey = `cron:${item.identifier}`;
    options.jobKeyMode = "replace";
  }
  options.maxAttempts ??= 3;
  const payload = { ...((item.payload as Record<string, unknown> | null) ?? {}), _schedule: item.identifier };
  return { ...item, options, payload };
}
