import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pino from "pino";
import { databaseClock, measureClock, readClocks, type ClockReading } from "../../../src/engine/cluster/clock.ts";
import { useTestDatabase } from "../../helpers/db.ts";

// The database's clock as a node estimates it from its heartbeats (src/engine/cluster/clock.ts):
// corrected for the round trip, a median that one slow beat does not move, kept against the
// monotonic clock, and a log line when the skew passes 1 s and when it is back, not per beat.

const db = useTestDatabase();

/** A logger whose lines are kept. */
function capturingLogger() {
  const lines: { level: number; msg: string; clockSkewMs?: number }[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

/** A node whose wall clock is `skewMs` off the database's, its monotonic clock set at will. */
function fakeNode(skewMs: number) {
  let monotonic = 1_000_000;
  let wallStep = 0;
  const databaseAt = (mono: number) => 1_800_000_000_000 + mono;
  const clocks = (): ClockReading => ({ wallMs: databaseAt(monotonic) + skewMs + wallStep, monotonicMs: monotonic });
  return {
    clocks,
    databaseAt,
    advance: (ms: number) => void (monotonic += ms),
    stepWallClock: (ms: number) => void (wallStep += ms),
    /** A beat that took `roundTripMs`, the database's clock read `readAt` of the way through it. */
    beat(clock: ReturnType<typeof databaseClock>, roundTripMs: number, readAt = 0.5) {
      const before = clocks();
      const read = databaseAt(monotonic + roundTripMs * readAt);
      monotonic += roundTripMs;
      clock.record(before, read, clocks());
    },
  };
}

describe("the database's clock, as a node measures it", () => {
  it("corrects for the round trip: the skew is off by at most half of it", () => {
    const node = fakeNode(-100_000);
    const clock = databaseClock({ logger: capturingLogger().logger, readClocks: node.clocks });
    assert.equal(clock.skewMs(), null, "not measured yet");
    // The answer was read at the very start of a 40 ms round trip: at most 20 ms off.
    node.beat(clock, 40, 0);
    assert.ok(Math.abs(clock.skewMs()! + 100_000) <= 20, `skew ${clock.skewMs()}`);
    node.beat(clock, 40, 0.5);
    node.beat(clock, 40, 0.5);
    assert.equal(clock.skewMs(), -100_000, "the median of three: two read at the midpoint");
    assert.equal(clock.now(), node.databaseAt(node.clocks().monotonicMs), "now() is the database's time");
    assert.ok(clock.reached() < clock.now() - 20, "reached() holds back at least half the round trip");
  });

  it("one slow beat (a lock wait) does not move the estimate", () => {
    const node = fakeNode(2500);
    const clock = databaseClock({ logger: capturingLogger().logger, readClocks: node.clocks });
    for (let i = 0; i < 4; i++) node.beat(clock, 2, 0.5);
    // 3 s spent waiting, the database's clock read at the end of it: 1.5 s off at the midpoint.
    node.beat(clock, 3000, 1);
    assert.equal(clock.skewMs(), 2500);
    assert.ok(Math.abs(clock.now() - node.databaseAt(node.clocks().monotonicMs)) <= 1);
  });

  it("follows the monotonic clock: a step of the wall clock moves neither now() nor, until the beats show it, the skew", () => {
    const node = fakeNode(0);
    const clock = databaseClock({ logger: capturingLogger().logger, readClocks: node.clocks });
    for (let i = 0; i < 3; i++) node.beat(clock, 2);
    node.stepWallClock(3_600_000);
    node.advance(10_000);
    assert.equal(clock.now(), node.databaseAt(node.clocks().monotonicMs), "the database's time, not the stepped wall clock's");
    for (let i = 0; i < 3; i++) node.beat(clock, 2);
    assert.equal(clock.skewMs(), 3_600_000, "the skew shows the step once most of the last five beats do");
    assert.equal(clock.now(), node.databaseAt(node.clocks().monotonicMs));
  });

  it("logs a warning when the skew passes 1 s and a line when it is back under 0.5 s, not on every beat", () => {
    const { logger, lines } = capturingLogger();
    const node = fakeNode(0);
    const reported: number[] = [];
    const clock = databaseClock({ logger, readClocks: node.clocks, onSkew: (skew) => reported.push(skew) });
    const beats = (n: number) => {
      for (let i = 0; i < n; i++) node.beat(clock, 2);
    };
    beats(5);
    assert.equal(lines.length, 0, "within 1 s: quiet");
    node.stepWallClock(-100_000);
    beats(10);
    const warnings = lines.filter((line) => line.level === 40);
    assert.equal(warnings.length, 1, "one warning for ten beats past 1 s");
    assert.equal(warnings[0]!.clockSkewMs, -100_000);
    assert.match(warnings[0]!.msg, /this node's clock is 100\.0 s behind the database's: its cron ticks follow the database's clock .* fix this machine's time synchronisation/);
    // Back to 0.8 s behind: under the warning's threshold, not yet under the recovery's.
    node.stepWallClock(99_200);
    beats(5);
    assert.equal(lines.length, 1, "no line between 0.5 s and 1 s");
    node.stepWallClock(800);
    beats(5);
    assert.equal(lines.length, 2);
    assert.equal(lines[1]!.level, 30);
    assert.match(lines[1]!.msg, /back within 500 ms of the database's/);
    node.stepWallClock(5000);
    beats(5);
    assert.match(lines[2]?.msg ?? "", /5\.0 s ahead of the database's/, "warns again when it drifts off again");
    assert.equal(reported.length, 30, "every measurement reported (the metric)");
  });

  it("measures a real database on this machine within a few ms", async () => {
    const clock = databaseClock({ logger: capturingLogger().logger });
    const client = await db.pool.connect();
    try {
      for (let i = 0; i < 3; i++) await measureClock(client, clock);
    } finally {
      client.release();
    }
    assert.ok(Math.abs(clock.skewMs()!) < 50, `skew ${clock.skewMs()} ms against the same machine's clock`);
    const { rows } = await db.pool.query<{ now_ms: number }>("select (extract(epoch from clock_timestamp()) * 1000)::float8 as now_ms");
    const estimate = clock.now();
    assert.ok(Math.abs(estimate - rows[0]!.now_ms) < 50, `now() ${estimate} against the database's ${rows[0]!.now_ms}`);
    assert.ok(Math.abs(readClocks().wallMs - estimate) < 50);
  });
});
