import type { Queryable } from "../db/pool.ts";
import type { Logger } from "../log.ts";

// The database's clock as this node sees it. The node's cron ticks follow it
// (crontab/cron-loop.ts): a node whose own clock is 100 s behind would otherwise start every
// tick 100 s late, and one ahead would queue them early. Every heartbeat is a measurement, as
// NTP makes one: the node reads its clocks before sending the beat and after the answer, and
// the database's clock_timestamp() was read in between, so taking it as the reading at the
// midpoint is off by at most half the round trip. The estimate is the median of the last few
// measurements: one slow beat (a wait for a lock) moves nothing.
//
// "The database's time now" is kept against the monotonic clock, not the wall clock: a wall
// clock stepped by NTP (or by hand) moves Date.now() at once, while the measurements catch up
// only over a few beats. The skew reported (`nodes`, the metric, the log) is the wall clock's.

/** Measurements the estimate is the median of. */
const WINDOW = 5;
/** The log warns once the skew is past this... */
export const SKEW_WARNING_MS = 1000;
/** ...and says it is over once the skew is back under this (no line per beat around 1 s). */
const SKEW_RECOVERED_MS = 500;
/** What a tick waits past the estimate's uncertainty, so that the database surely agrees it has come. */
const TICK_MARGIN_MS = 5;

const DATABASE_CLOCK = "select (extract(epoch from clock_timestamp()) * 1000)::float8 as database_ms";

export interface ClockReading {
  /** Date.now(). */
  wallMs: number;
  /** The monotonic clock, on the epoch scale (performance.timeOrigin + performance.now()). */
  monotonicMs: number;
}

export const readClocks = (): ClockReading => ({ wallMs: Date.now(), monotonicMs: performance.timeOrigin + performance.now() });

interface Measurement {
  roundTripMs: number;
  /** The wall clock minus the database's. */
  skewMs: number;
  /** The database's clock minus the monotonic one. */
  offsetMs: number;
}

export interface DatabaseClock {
  /** The database's time now (epoch ms); this node's own clock until the first measurement. */
  now(): number;
  /** A time the database's clock has surely reached: now() less the estimate's uncertainty. Ticks fire on it. */
  reached(): number;
  /** This node's clock minus the database's, in ms (positive: ahead); null before the first measurement. */
  skewMs(): number | null;
  /** A measurement: the clocks read before asking, the database's clock_timestamp() (epoch ms), the clocks read after the answer. */
  record(before: ClockReading, databaseMs: number, after: ClockReading): void;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

function describeSkew(skewMs: number): string {
  return `${(Math.abs(skewMs) / 1000).toFixed(1)} s ${skewMs > 0 ? "ahead of" : "behind"}`;
}

export function databaseClock(options: { logger: Logger; onSkew?(skewMs: number): void; readClocks?: () => ClockReading }): DatabaseClock {
  const read = options.readClocks ?? readClocks;
  const measurements: Measurement[] = [];
  let skew: number | null = null;
  let offset: number | null = null;
  let uncertainty = 0;
  let warned = false;

  const now = () => {
    const clocks = read();
    return offset === null ? clocks.wallMs : clocks.monotonicMs + offset;
  };

  function judge(skewMs: number): void {
    if (!warned && Math.abs(skewMs) > SKEW_WARNING_MS) {
      warned = true;
      options.logger.warn(
        { clockSkewMs: Math.round(skewMs) },
        `this node's clock is ${describeSkew(skewMs)} the database's: its cron ticks follow the database's clock and still start on time, but its log times and what its jobs read from the system clock are off; fix this machine's time synchronisation (chrony, systemd-timesyncd or ntpd)`,
      );
    } else if (warned && Math.abs(skewMs) < SKEW_RECOVERED_MS) {
      warned = false;
      options.logger.info({ clockSkewMs: Math.round(skewMs) }, `this node's clock is back within ${SKEW_RECOVERED_MS} ms of the database's`);
    }
  }

  return {
    now,
    reached: () => now() - uncertainty - TICK_MARGIN_MS,
    skewMs: () => skew,
    record(before, databaseMs, after) {
      measurements.push({
        roundTripMs: after.monotonicMs - before.monotonicMs,
        skewMs: (before.wallMs + after.wallMs) / 2 - databaseMs,
        offsetMs: databaseMs - (before.monotonicMs + after.monotonicMs) / 2,
      });
      if (measurements.length > WINDOW) measurements.shift();
      skew = median(measurements.map((m) => m.skewMs));
      offset = median(measurements.map((m) => m.offsetMs));
      uncertainty = median(measurements.map((m) => m.roundTripMs)) / 2;
      judge(skew);
      options.onSkew?.(skew);
    },
  };
}

/** One measurement on `db` (a connected client: a pool's connect would count as round trip). */
export async function measureClock(db: Queryable, clock: DatabaseClock): Promise<void> {
  const before = readClocks();
  const { rows } = await db.query<{ database_ms: number }>(DATABASE_CLOCK);
  clock.record(before, rows[0]!.database_ms, readClocks());
}
