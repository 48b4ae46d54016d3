// Wall clocks of IANA time zones, from Node's Intl (the ICU time zone data Node ships): no
// dependency, and the same zone names PostgreSQL knows. Everything here works on whole
// minutes of UTC time (milliseconds since the epoch), the unit cron works in.

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

/** A local date and time as read on a wall clock (month 1-12, dow 0 = Sunday). */
export interface WallTime {
  year: number;
  month: number;
  date: number;
  hour: number;
  minute: number;
  dow: number;
}

const formats = new Map<string, Intl.DateTimeFormat>();

// UTC needs no time zone data: read from Date itself, so a node whose schedules are all UTC
// (the default) never loads ICU's zone tables (about 5 MiB of memory).
const UTC_NAMES = new Set(["UTC", "Etc/UTC"]);

function formatFor(zone: string): Intl.DateTimeFormat {
  let format = formats.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
    });
    formats.set(zone, format);
  }
  return format;
}

/**
 * The problem with a zone name, or null when Node knows it. Only IANA names (`Area/City`,
 * `UTC`): Intl also takes offsets such as `+02:00`, which have no DST and which
 * PostgreSQL reads with the opposite sign (POSIX), so they are refused.
 */
export function zoneProblem(zone: string): string | null {
  if (!/^[A-Za-z][A-Za-z0-9_+\-]*(\/[A-Za-z0-9_+\-]+)*$/.test(zone)) {
    return `'${zone}' is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)`;
  }
  if (UTC_NAMES.has(zone)) return null;
  try {
    formatFor(zone);
    return null;
  } catch {
    return `unknown time zone '${zone}'; use an IANA name such as Europe/Berlin, America/New_York or UTC`;
  }
}

/** The wall clock of `zone` at instant `utcMs`. */
export function wallTimeAt(zone: string, utcMs: number): WallTime {
  if (UTC_NAMES.has(zone)) {
    const at = new Date(utcMs);
    return { year: at.getUTCFullYear(), month: at.getUTCMonth() + 1, date: at.getUTCDate(), hour: at.getUTCHours(), minute: at.getUTCMinutes(), dow: at.getUTCDay() };
  }
  const parts: Record<string, number> = {};
  for (const part of formatFor(zone).formatToParts(utcMs)) {
    if (part.type !== "literal") parts[part.type] = Number(part.value);
  }
  const wall = { year: parts.year!, month: parts.month!, date: parts.day!, hour: parts.hour!, minute: parts.minute! };
  return { ...wall, dow: new Date(Date.UTC(wall.year, wall.month - 1, wall.date)).getUTCDay() };
}

/** A wall time as if it were UTC (a "naive" timestamp): wall-clock arithmetic is plain subtraction. */
export function naiveMs(wall: Omit<WallTime, "dow">): number {
  return Date.UTC(wall.year, wall.month - 1, wall.date, wall.hour, wall.minute);
}

/** The zone's offset from UTC at instant `utcMs`, in milliseconds (whole minutes). */
export function offsetAt(zone: string, utcMs: number): number {
  const instant = Math.floor(utcMs / MINUTE) * MINUTE;
  return naiveMs(wallTimeAt(zone, instant)) - instant;
}

/**
 * Every instant whose wall clock in `zone` reads the naive time `naive`, earliest first:
 * one on an ordinary day, two when the clocks go back over it, none when they jump over it.
 * Offsets a day either side cover every transition (no zone changes twice within a day).
 */
export function instantsOf(zone: string, naive: number): number[] {
  const offsets = new Set([offsetAt(zone, naive - DAY), offsetAt(zone, naive), offsetAt(zone, naive + DAY)]);
  const found = new Set<number>();
  for (const offset of offsets) {
    const candidate = naive - offset;
    if (offsetAt(zone, candidate) === offset) found.add(candidate);
  }
  return [...found].sort((a, b) => a - b);
}

/**
 * The instant PostgreSQL's `naive AT TIME ZONE zone` gives for a wall time that does not
 * exist: it reads it with the offset in force just before the jump, so it lands one
 * gap-length later on the wall (02:30 on a night New York jumps from 02:00 to 03:00 is 03:30).
 */
export function instantOfSkipped(zone: string, naive: number): number {
  const largest = Math.max(offsetAt(zone, naive - DAY), offsetAt(zone, naive + DAY));
  // naive - largest is before the jump (see instantsOf): its offset is the one before it.
  return naive - offsetAt(zone, naive - largest);
}
