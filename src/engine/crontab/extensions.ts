import { zoneProblem } from "./zone.ts";

// The options our crontab adds to graphile-worker's (`?tz=`, `?overlap=`, `?jitter=`,
// `?grace=`, `?catchup=`). They
// are taken off the line before graphile-worker parses the rest (it refuses keys it does not
// know), so a line keeps graphile-worker's format with ours mixed into the same `?a=b&c=d`.

export type OverlapPolicy = "queue_one" | "skip" | "allow";

export interface EntryExtensions {
  /** IANA zone the five fields are read in; `UTC` is graphile-worker's own behaviour. */
  timezone: string;
  overlap: OverlapPolicy;
  /** Each tick starts after a delay in [0, jitterMs); 0 for none. */
  jitterMs: number;
  /** How long after a tick (and its jitter) a run may take to start before the schedule is late. */
  graceMs: number;
  /** After downtime, which ticks `fill=` runs: all of them (graphile-worker's way) or the newest only. */
  catchup: CatchupPolicy;
}

export type CatchupPolicy = "all" | "latest";

const OUR_KEYS = new Set(["tz", "overlap", "jitter", "grace", "catchup"]);
const OVERLAPS: readonly OverlapPolicy[] = ["queue_one", "skip", "allow"];
const PERIODS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
/** A jitter of a day or more would move a daily run to another day: surely a mistake. */
export const MAX_JITTER_MS = 86_400_000;
/** A schedule is late once its due tick is older than this (docs/schedules.md, "Late and missed ticks"): `?grace=` changes it. */
export const DEFAULT_GRACE_MS = 60_000;

/** A duration in graphile-worker's `fill=` syntax (`30s`, `5m`, `1h30m`), or null. */
export function parseDuration(text: string): number | null {
  if (!/^(\d+[smhdw])+$/.test(text)) return null;
  let total = 0;
  for (const [, quantity, unit] of text.matchAll(/(\d+)([smhdw])/g)) total += Number(quantity) * PERIODS[unit!]!;
  return total;
}

export interface SplitLine {
  /** The line for graphile-worker's parser: ours taken out. */
  graphileLine: string;
  extensions: EntryExtensions;
  problems: string[];
}

/**
 * Takes our options off a crontab line. `defaultTimezone` (SCHEDULER_TIMEZONE) applies to
 * lines without `?tz=`. Problems name the option and what it takes.
 */
export function splitExtensions(line: string, defaultTimezone: string): SplitLine {
  const extensions: EntryExtensions = { timezone: defaultTimezone, overlap: "queue_one", jitterMs: 0, graceMs: DEFAULT_GRACE_MS, catchup: "all" };
  const problems: string[] = [];
  // MIN HOUR DOM MON DOW task ?options {payload}: options are the token after the task.
  const match = /^((?:\S+\s+){5}\S+)(\s+)\?(\S+)(.*)$/.exec(line);
  if (!match) return { graphileLine: line, extensions, problems };
  const [, head, space, options, rest] = match as unknown as [string, string, string, string, string];
  const kept: string[] = [];
  const seen = new Set<string>();
  for (const pair of options.split("&")) {
    const equals = pair.indexOf("=");
    const key = equals < 0 ? pair : pair.slice(0, equals);
    if (!OUR_KEYS.has(key)) {
      kept.push(pair);
      continue;
    }
    const value = equals < 0 ? "" : decodeURIComponent(pair.slice(equals + 1));
    if (seen.has(key)) {
      problems.push(`option '${key}' is given more than once; keep one`);
      continue;
    }
    seen.add(key);
    if (key === "tz") {
      const problem = zoneProblem(value);
      if (problem) problems.push(`?tz=${value}: ${problem}`);
      else extensions.timezone = value;
    } else if (key === "overlap") {
      if ((OVERLAPS as readonly string[]).includes(value)) extensions.overlap = value as OverlapPolicy;
      else problems.push(`?overlap=${value}: expected one of ${OVERLAPS.join(", ")} (queue_one is the default: at most one run waiting)`);
    } else if (key === "catchup") {
      if (value === "all" || value === "latest") extensions.catchup = value;
      else problems.push(`?catchup=${value}: expected all (the default: every tick fill= reaches is run) or latest (only the newest; the older ones are recorded missed)`);
    } else if (key === "grace") {
      const ms = parseDuration(value);
      if (ms === null || ms < 1000) problems.push(`?grace=${value}: expected a duration of at least 1s, written like fill= (e.g. 30s, 5m, 1h30m); the default is 60s`);
      else extensions.graceMs = ms;
    } else {
      const ms = parseDuration(value);
      if (ms === null || ms === 0 || ms >= MAX_JITTER_MS) problems.push(`?jitter=${value}: expected a duration from 1s to under a day, written like fill= (e.g. 30s, 5m, 1h30m)`);
      else extensions.jitterMs = ms;
    }
  }
  const graphileLine = kept.length > 0 ? `${head}${space}?${kept.join("&")}${rest}` : `${head}${rest}`;
  return { graphileLine, extensions, problems };
}
