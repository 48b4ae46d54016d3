import { dayMatches, instantForWallTime, type ZonedSchedule } from "./match.ts";
import { instantsOf, offsetAt } from "./zone.ts";

// The next time a zoned line fires (the TypeScript twin of scheduler.cron_next_zoned in
// sql/engine/020: same rule, see match.ts). It walks the zone's calendar days rather than
// UTC minutes, so a line that fires once a year is found in a few thousand cheap steps.

const MINUTE = 60_000;
const DAY = 86_400_000;
/** 29 February recurs within 8 years (2096 -> 2104); cron_next looks as far. */
const HORIZON_DAYS = 366 * 9;

/** The instants the schedule fires for wall times of the naive day starting at `dayNaive`, ascending. */
function instantsOfDay(schedule: ZonedSchedule, dayNaive: number): number[] {
  const { fields, zone } = schedule;
  const times = fields.hours.flatMap((hour) => fields.minutes.map((minute) => dayNaive + hour * 3_600_000 + minute * MINUTE));
  const before = offsetAt(zone, dayNaive - 2 * DAY);
  if (before === offsetAt(zone, dayNaive + 2 * DAY)) return times.map((naive) => naive - before);
  // The clocks change near this day: each wall time on its own.
  const instants = schedule.followsElapsedTime ? times.flatMap((naive) => instantsOf(zone, naive)) : times.map((naive) => instantForWallTime(zone, naive));
  return [...new Set(instants)].sort((a, b) => a - b);
}

/**
 * The first instant at or after `after` (rounded up to a whole minute) at which the zoned
 * schedule fires; null when it never does (e.g. 30 February).
 */
export function nextZonedRun(schedule: ZonedSchedule, after: Date): Date | null {
  const from = Math.ceil(after.getTime() / MINUTE) * MINUTE;
  // Start a day early: the local day of `from` may have begun up to 14 h earlier in UTC, and a
  // skipped wall time of the day before may land after it.
  let day = Math.floor((from + offsetAt(schedule.zone, from)) / DAY) * DAY - DAY;
  let best: number | null = null;
  let daysLeft = HORIZON_DAYS;
  for (; daysLeft > 0; daysLeft--, day += DAY) {
    const date = new Date(day);
    const month = date.getUTCMonth() + 1;
    if (!schedule.fields.months.includes(month) || !dayMatches(schedule.fields, date.getUTCDate(), date.getUTCDay())) {
      if (best !== null) break;
      continue;
    }
    const found = instantsOfDay(schedule, day).find((instant) => instant >= from);
    if (found !== undefined && (best === null || found < best)) best = found;
    // A day's instants may reach into the next local day's (a skipped time moved later, a
    // repeated hour): look at one more matching day, then stop.
    else if (best !== null) break;
  }
  return best === null ? null : new Date(best);
}
