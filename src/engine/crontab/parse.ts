import { parseCrontab, type ParsedCronItem } from "graphile-worker";
import JSON5 from "json5";
import { SchedulerError } from "../errors.ts";
import { cronFieldsOf, cronMatcherByInstant, type CronFields } from "../graphile/internals.ts";
import { splitExtensions, type EntryExtensions, type OverlapPolicy } from "./extensions.ts";
import { firesAt, hourFieldFollowsElapsedTime } from "./match.ts";
import { didYouMean } from "../suggest.ts";

// Our crontab is graphile-worker's format, parsed by graphile-worker itself, line by
// line so that every bad line is reported at once. On top we add what an operator
// expects: task names checked against the task files, each entry's payload checked against
// its job's schema, a description from the comment above each entry, and safe per-entry
// defaults (see withDefaults); and options of our own (extensions.ts): a time zone per line
// (`?tz=`, default SCHEDULER_TIMEZONE), an overlap policy (`?overlap=`) and `?jitter=`.

export type { CronFields, OverlapPolicy };

/** The longest `fill=` of a zoned line: graphile-worker tells its matcher no year (see instantOfDigest). */
const MAX_ZONED_FILL_MS = 90 * 86_400_000;

/** What the parser checks entries against: the tasks a node can run. */
export interface TaskCatalog {
  names(): ReadonlySet<string>;
  /** A problem with an entry's payload for this task, or null when it is acceptable. */
  checkPayload(task: string, payload: Record<string, unknown>): string | null;
  /** Whether runs of the task never overlap (defineJob's `exclusive`, true by default); plain tasks: false. */
  isExclusive?(task: string): boolean;
}

export interface ParseOptions {
  /** The zone of lines without `?tz=` (SCHEDULER_TIMEZONE); default UTC. */
  defaultTimezone?: string;
  /** The clock zoned matchers read to know the year (tests inject one). */
  clock?: () => number;
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
  /** IANA zone the fields are read in (`UTC`: graphile-worker's own matching). */
  timezone: string;
  overlap: OverlapPolicy;
  /** Each tick is held back by a delay in [0, jitterMs), the same on every node; 0: none. */
  jitterMs: number;
  /** How long a due tick may wait for its run to start before the schedule counts as late. */
  graceMs: number;
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
export function parseCrontabText(text: string, catalog?: TaskCatalog, options: ParseOptions = {}): ParseResult {
  const defaultTimezone = options.defaultTimezone ?? "UTC";
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
    const { graphileLine, extensions, problems: extensionProblems } = splitExtensions(line, defaultTimezone);
    if (extensionProblems.length > 0) {
      for (const message of extensionProblems) problems.push({ line: lineNumber, message });
      return;
    }
    let item: ParsedCronItem;
    try {
      // Padding keeps graphile-worker's own messages on the right line number.
      const parsed = parseCrontab("\n".repeat(index) + graphileLine);
      item = parsed[0]!;
    } catch (error) {
      problems.push({ line: lineNumber, message: explainBadLine(line, lineNumber, (error as Error).message) });
      return;
    }
    if (knownTasks && !knownTasks.has(item.task)) {
      problems.push({
        line: lineNumber,
        message: `task '${item.task}' has no task file (expected tasks/${item.task}.ts);${didYouMean(item.task, knownTasks)} known tasks: ${[...knownTasks].sort().join(", ") || "(none)"}`,
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
    if (extensions.overlap === "allow" && catalog?.isExclusive?.(item.task) !== false) {
      problems.push({
        line: lineNumber,
        message: `?overlap=allow: runs of '${item.task}' never overlap (its job is exclusive); use overlap=skip or queue_one, or define the job with exclusive: false if its runs are independent`,
      });
      return;
    }
    if (extensions.catchup === "latest" && item.options.backfillPeriod === 0) {
      problems.push({ line: lineNumber, message: "?catchup=latest needs ?fill= (e.g. ?fill=1h&catchup=latest): it chooses among the missed ticks fill= reaches back to" });
      return;
    }
    if (extensions.timezone !== "UTC" && item.options.backfillPeriod > MAX_ZONED_FILL_MS) {
      problems.push({ line: lineNumber, message: `?fill= of a line with a time zone may be at most 90 days (this one: ?tz=${extensions.timezone})` });
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
    const schedule = line.split(/\s+/).slice(0, 5).join(" ");
    const fields = cronFieldsOf(item);
    entries.push({
      line: lineNumber,
      identifier: item.identifier,
      task: item.task,
      schedule,
      description,
      payload,
      fields,
      ...extensions,
      item: withDefaults(zoned(item, fields, schedule, extensions.timezone, options.clock), extensions),
    });
  });
  return { entries, problems };
}

/** Parses and throws one error listing every problem, with file and line. */
export function parseCrontabOrThrow(text: string, source: string, catalog?: TaskCatalog, options: ParseOptions = {}): CrontabEntry[] {
  const { entries, problems } = parseCrontabText(text, catalog, options);
  if (problems.length > 0) {
    const lines = problems.map((problem) => `  ${source}:${problem.line}: ${problem.message}`);
    throw new SchedulerError("invalid_crontab", `crontab ${source} has ${problems.length} problem(s):\n${lines.join("\n")}`, {
      hint: "fix these lines; the format is graphile-worker's, 'MIN HOUR DOM MON DOW task ?opts {payload}'; its options id=, fill=, max=, queue=, jobKey=, jobKeyMode= and priority=, and ours tz=, overlap=, jitter=, grace= and catchup= (docs/schedules.md, and the crontab's header)",
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
  // The five time fields come first; a line with fewer before its task is the usual slip.
  const words = line.split(/\s+/);
  const firstNonTime = words.findIndex((word) => !/^[\d*/,\-A-Za-z]+$/.test(word) || /^[A-Za-z_][\w:-]*$/.test(word) && !/^(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|sun|mon|tue|wed|thu|fri|sat)$/i.test(word));
  if (/^Could not process line/.test(message) && firstNonTime >= 0 && firstNonTime < 5) {
    return `line ${lineNumber} has ${firstNonTime} time field(s) before its task '${words[firstNonTime]}', a line needs 5 (MIN HOUR DOM MON DOW): a field is missing, e.g. '${[...words.slice(0, firstNonTime), ...Array(5 - firstNonTime).fill("*"), ...words.slice(firstNonTime)].join(" ")}'`;
  }
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
 * A zoned line fires by its zone's wall clock (match.ts) through the node's cron loop
 * (cron-loop.ts, graphile-worker's own loop on the database's clock): its matcher is swapped
 * for one that decides by the UTC instant. UTC lines keep graphile-worker's matcher untouched.
 */
function zoned(item: ParsedCronItem, fields: CronFields, schedule: string, zone: string, clock?: () => number): ParsedCronItem {
  if (zone === "UTC") return item;
  const rule = { fields, zone, followsElapsedTime: hourFieldFollowsElapsedTime(schedule.split(" ")[1]!) };
  return { ...item, match: cronMatcherByInstant((instant) => firesAt(rule, instant), fields, clock) };
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
 * `?overlap=allow` entries get neither the queue nor the job key: every tick its own job,
 * run as soon as a worker is free. `?overlap=skip` and `?jitter=` are carried in the payload
 * (`_overlap`, `_jitter_max_ms`) for the job wrapper and the cron hook (jitter.ts).
 */
function withDefaults(item: ParsedCronItem, extensions: EntryExtensions): ParsedCronItem {
  const options = { ...item.options };
  const allow = extensions.overlap === "allow";
  if (!allow) options.queueName ??= item.task;
  if (!allow && options.jobKey === undefined && options.backfillPeriod === 0) {
    options.jobKey = `cron:${item.identifier}`;
    options.jobKeyMode = "replace";
  }
  options.maxAttempts ??= 3;
  const payload: Record<string, unknown> = { ...((item.payload as Record<string, unknown> | null) ?? {}), _schedule: item.identifier };
  if (extensions.overlap === "skip") payload._overlap = "skip";
  if (extensions.jitterMs > 0) payload._jitter_max_ms = extensions.jitterMs;
  if (extensions.catchup === "latest") payload._catchup = "latest";
  return { ...item, options, payload };
}
