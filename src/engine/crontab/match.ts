import type { CronFields } from "../graphile/internals.ts";
import { instantOfSkipped, instantsOf, naiveMs, offsetAt, wallTimeAt, type WallTime } from "./zone.ts";

// When a crontab line with a time zone fires: the five fields are read on the zone's wall
// clock. Where the wall clock repeats or skips an hour (DST), the rule is the one
// scheduler.cron_next_zoned (sql/engine/020) applies for scheduled_jobs.next_run:
// - a line whose hour field is `*` or `*/N` follows elapsed time: a wall time that occurs
//   twice runs twice, one that never occurs is skipped (an hourly job runs once an hour of
//   real time, nothing doubled, nothing lost);
// - any other line runs once per day's wall time: at the first occurrence of a time that
//   occurs twice, and for a time that does not exist at the instant PostgreSQL's
//   `AT TIME ZONE` gives (one gap-length later on the wall: a 02:30 job runs at 03:30).

const DAY = 86_400_000;

export interface ZonedSchedule {
  fields: CronFields;
  zone: string;
  /** The hour field is `*` or a step of it (`*\/N`): the line follows elapsed time (see above). */
  followsElapsedTime: boolean;
}

/** Whether an hour field, as written, makes a line follow elapsed time. */
export function hourFieldFollowsElapsedTime(hourField: string): boolean {
  return /^\*(\/\d+)?$/.test(hourField);
}

/** graphile-worker's day rule: when both day fields restrict, either may match. */
export function dayMatches(fields: CronFields, date: number, dow: number): boolean {
  const dateRestricts = fields.dates.length !== 31;
  const dowRestricts = fields.dows.length !== 7;
  if (dateRestricts && dowRestricts) return fields.dates.includes(date) || fields.dows.includes(dow);
  if (dateRestricts) return fields.dates.includes(date);
  if (dowRestricts) return fields.dows.includes(dow);
  return true;
}

export function wallTimeMatches(fields: CronFields, wall: WallTime): boolean {
  return fields.minutes.includes(wall.minute) && fields.hours.includes(wall.hour) && fields.months.includes(wall.month) && dayMatches(fields, wall.date, wall.dow);
}

/** The naive wall time `naive` (see zone.ts) as a WallTime. */
function wallOfNaive(naive: number): WallTime {
  const d = new Date(naive);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, date: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), dow: d.getUTCDay() };
}

/** When a wall-clock line fires for the naive wall time `naive`: its first occurrence, or the skipped time's instant. */
export function instantForWallTime(zone: string, naive: number): number {
  return instantsOf(zone, naive)[0] ?? instantOfSkipped(zone, naive);
}

/** Whether the schedule fires at the whole UTC minute `utcMs`. */
export function firesAt(schedule: ZonedSchedule, utcMs: number): boolean {
  const { fields, zone } = schedule;
  const wall = wallTimeAt(zone, utcMs);
  if (schedule.followsElapsedTime) return wallTimeMatches(fields, wall);
  // A wall time that fires here is either the clock's own reading (when this is its first
  // occurrence) or, just after a jump, a skipped wall time read with the offset before it.
  const candidates = new Set([naiveMs(wall), utcMs + offsetAt(zone, utcMs - DAY)]);
  for (const naive of candidates) {
    if (wallTimeMatches(fields, wallOfNaive(naive)) && instantForWallTime(zone, naive) === utcMs) return true;
  }
  return false;
}
