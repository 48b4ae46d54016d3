import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CronExpressionParser } from "cron-parser";
import { parseCrontabText, type CrontabEntry } from "../../../src/engine/crontab/parse.ts";
import { nextZonedRun } from "../../../src/engine/crontab/schedule.ts";
import { hourFieldFollowsElapsedTime } from "../../../src/engine/crontab/match.ts";
import { offsetAt, wallTimeAt, zoneProblem } from "../../../src/engine/crontab/zone.ts";
import { useTestDatabase } from "../../helpers/db.ts";

// Zoned crontab lines (`?tz=`): the DST rule (src/engine/crontab/match.ts) checked three ways
// that must agree: the matcher graphile-worker's cron calls each UTC minute (with an injected
// clock, as a node would run on those days), the TypeScript next run, and
// scheduler.cron_next_zoned, which scheduled_jobs.next_run comes from. Pinned on both
// transitions of several zones, then against cron-parser (an independent implementation) on
// random expressions and days without a transition.

const db = useTestDatabase();
const MINUTE = 60_000;

function entryOf(expression: string, zone: string, clock?: () => number): CrontabEntry {
  const { entries, problems } = parseCrontabText(`${expression} some_task ?tz=${zone}`, undefined, { clock });
  assert.deepEqual(problems, [], expression);
  return entries[0]!;
}

/** The minutes graphile-worker's cron would fire the line at, walking UTC minutes from `from` as its loop does. */
function firedByCronLoop(expression: string, zone: string, from: Date, count: number): string[] {
  let now = from.getTime();
  const entry = entryOf(expression, zone, () => now);
  const fired: string[] = [];
  for (let t = Math.ceil(from.getTime() / MINUTE) * MINUTE; fired.length < count && t < from.getTime() + 3 * 86_400_000; t += MINUTE) {
    now = t;
    const d = new Date(t);
    const digest = { min: d.getUTCMinutes(), hour: d.getUTCHours(), date: d.getUTCDate(), month: d.getUTCMonth() + 1, dow: d.getUTCDay() };
    if (entry.item.match(digest)) fired.push(d.toISOString());
  }
  return fired;
}

function nextRunsTs(expression: string, zone: string, from: Date, count: number): string[] {
  const entry = entryOf(expression, zone);
  const schedule = { fields: entry.fields, zone, followsElapsedTime: hourFieldFollowsElapsedTime(expression.split(" ")[1]!) };
  const found: string[] = [];
  let after = from;
  for (let i = 0; i < count; i++) {
    const next = nextZonedRun(schedule, after);
    if (!next) break;
    found.push(next.toISOString());
    after = new Date(next.getTime() + MINUTE);
  }
  return found;
}

const SQL_NEXT = `select scheduler.cron_next_zoned(
    array(select json_array_elements_text(e->'minutes')::int), array(select json_array_elements_text(e->'hours')::int),
    array(select json_array_elements_text(e->'dates')::int), array(select json_array_elements_text(e->'months')::int),
    array(select json_array_elements_text(e->'dows')::int), e->>'zone', (e->>'elapsed')::boolean, (e->>'after')::timestamptz) as next
  from json_array_elements($1::json) with ordinality as t(e, n) order by n`;

async function nextRunsSql(cases: { expression: string; zone: string; after: Date }[]): Promise<(string | null)[]> {
  const rows = cases.map(({ expression, zone, after }) => ({
    ...entryOf(expression, zone).fields,
    zone,
    elapsed: hourFieldFollowsElapsedTime(expression.split(" ")[1]!),
    after: after.toISOString(),
  }));
  const { rows: result } = await db.pool.query<{ next: Date | null }>(SQL_NEXT, [JSON.stringify(rows)]);
  return result.map((row) => row.next?.toISOString() ?? null);
}

async function sqlSequence(expression: string, zone: string, from: Date, count: number): Promise<string[]> {
  const found: string[] = [];
  let after = from;
  for (let i = 0; i < count; i++) {
    const [next] = await nextRunsSql([{ expression, zone, after }]);
    if (!next) break;
    found.push(next);
    after = new Date(Date.parse(next) + MINUTE);
  }
  return found;
}

const iso = (text: string) => new Date(text).toISOString();

/** The line, zone, start and the instants it must fire at, in order. */
const PINNED: { expression: string; zone: string; from: string; want: string[]; why: string }[] = [
  // From the issue.
  { expression: "30 2 * * *", zone: "America/New_York", from: "2025-03-09T06:00Z", want: ["2025-03-09T07:30Z", "2025-03-10T06:30Z"], why: "02:30 does not exist: runs at 03:30 EDT" },
  { expression: "30 1 * * *", zone: "America/New_York", from: "2025-11-02T04:00Z", want: ["2025-11-02T05:30Z", "2025-11-03T06:30Z"], why: "01:30 occurs twice: the first (EDT) only" },
  { expression: "30 1 * * *", zone: "Europe/London", from: "2025-10-26T00:00Z", want: ["2025-10-26T00:30Z", "2025-10-27T01:30Z"], why: "01:30 BST, not 01:30 GMT" },
  { expression: "*/30 * * * *", zone: "America/Los_Angeles", from: "2025-11-02T07:45Z", want: ["2025-11-02T08:00Z", "2025-11-02T08:30Z", "2025-11-02T09:00Z", "2025-11-02T09:30Z", "2025-11-02T10:00Z"], why: "elapsed time: the repeated hour runs twice" },
  { expression: "*/30 * * * *", zone: "America/New_York", from: "2025-03-09T06:10Z", want: ["2025-03-09T06:30Z", "2025-03-09T07:00Z", "2025-03-09T07:30Z"], why: "elapsed time: the skipped hour is skipped" },
  { expression: "15 1 * * *", zone: "Australia/Lord_Howe", from: "2025-10-04T12:00Z", want: ["2025-10-04T14:45Z", "2025-10-05T14:15Z"], why: "a 30-minute shift" },
  // Both transitions, more zones.
  { expression: "0 * * * *", zone: "America/New_York", from: "2025-11-02T04:30Z", want: ["2025-11-02T05:00Z", "2025-11-02T06:00Z", "2025-11-02T07:00Z"], why: "hourly: 01:00 EDT, 01:00 EST, 02:00 EST" },
  { expression: "0 * * * *", zone: "America/New_York", from: "2025-03-09T05:30Z", want: ["2025-03-09T06:00Z", "2025-03-09T07:00Z"], why: "hourly: 01:00 EST, then 03:00 EDT" },
  { expression: "30 1 * * *", zone: "Europe/London", from: "2025-03-29T12:00Z", want: ["2025-03-30T01:30Z", "2025-03-31T00:30Z"], why: "01:30 does not exist: 02:30 BST" },
  { expression: "0 1 * * *", zone: "Europe/London", from: "2025-03-29T12:00Z", want: ["2025-03-30T01:00Z", "2025-03-31T00:00Z"], why: "01:00 does not exist: 02:00 BST" },
  { expression: "15 2 * * *", zone: "Australia/Lord_Howe", from: "2025-10-04T12:00Z", want: ["2025-10-04T15:45Z", "2025-10-05T15:15Z"], why: "02:15 does not exist (02:00 -> 02:30): runs at 02:45" },
  { expression: "45 1 * * *", zone: "Australia/Lord_Howe", from: "2025-04-05T12:00Z", want: ["2025-04-05T14:45Z", "2025-04-06T15:15Z"], why: "01:45 occurs twice (02:00 -> 01:30): the first" },
  { expression: "*/15 * * * *", zone: "Australia/Lord_Howe", from: "2025-04-05T14:20Z", want: ["2025-04-05T14:30Z", "2025-04-05T14:45Z", "2025-04-05T15:00Z", "2025-04-05T15:15Z", "2025-04-05T15:30Z"], why: "elapsed: 01:30 .. 01:45 LHDT then 01:30 .. 01:45 again" },
  { expression: "0 9 * * *", zone: "Asia/Kathmandu", from: "2025-06-01T00:00Z", want: ["2025-06-01T03:15Z", "2025-06-02T03:15Z"], why: "+05:45" },
  { expression: "5 0 * * *", zone: "Asia/Kathmandu", from: "1985-12-31T12:00Z", want: ["1985-12-31T18:35Z", "1986-01-01T18:20Z"], why: "1986: +05:30 -> +05:45 at midnight; 00:05 does not exist" },
];

describe("zoned crontab lines across DST", () => {
  for (const { expression, zone, from, want, why } of PINNED) {
    it(`${expression} ?tz=${zone} from ${from}: ${why}`, async () => {
      const expected = want.map(iso);
      assert.deepEqual(firedByCronLoop(expression, zone, new Date(from), want.length), expected, "graphile-worker's cron loop, minute by minute");
      assert.deepEqual(nextRunsTs(expression, zone, new Date(from), want.length), expected, "TypeScript next run");
      assert.deepEqual(await sqlSequence(expression, zone, new Date(from), want.length), expected, "scheduler.cron_next_zoned");
    });
  }

  it("the three agree around every transition of 2025 in each zone, on several kinds of line", async () => {
    const zones = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Europe/Berlin", "America/Santiago", "Asia/Kathmandu", "Pacific/Chatham"];
    const expressions = ["30 2 * * *", "0 1,2,3 * * *", "*/20 * * * *", "15 */2 * * *", "0 0 * * *", "45 23 * * *", "0 12 * * 0", "10 1-3 * * *"];
    const cases: { expression: string; zone: string; after: Date }[] = [];
    for (const zone of zones) {
      for (let t = Date.UTC(2025, 0, 1); t < Date.UTC(2026, 0, 1); t += 3_600_000) {
        if (offsetAt(zone, t) === offsetAt(zone, t + 3_600_000)) continue;
        for (const expression of expressions) for (const hours of [-30, -6, -2, 0, 1]) cases.push({ expression, zone, after: new Date(t + hours * 3_600_000 + 7 * MINUTE) });
      }
    }
    assert.ok(cases.length > 200, `${cases.length} cases`);
    const sql = await nextRunsSql(cases);
    cases.forEach(({ expression, zone, after }, i) => {
      const [ts] = nextRunsTs(expression, zone, after, 1);
      assert.equal(sql[i], ts, `${expression} ?tz=${zone} after ${after.toISOString()}: SQL vs TypeScript`);
      const [loop] = firedByCronLoop(expression, zone, after, 1);
      assert.equal(loop, ts, `${expression} ?tz=${zone} after ${after.toISOString()}: cron loop vs TypeScript`);
    });
  });

  it("agrees with cron-parser on 500 random expressions and zones, on days without a transition", async () => {
    const zones = ["America/New_York", "Europe/London", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu", "Asia/Tokyo", "America/Sao_Paulo", "Pacific/Auckland", "Asia/Kolkata", "America/St_Johns"];
    const random = (max: number) => Math.floor(Math.random() * max);
    const field = (min: number, max: number) => {
      const kind = random(4);
      if (kind === 0) return "*";
      if (kind === 1) return `*/${2 + random(Math.max(1, max - min - 1))}`;
      if (kind === 2) return String(min + random(max - min + 1));
      const a = min + random(max - min);
      const b = a + 1 + random(max - a);
      // graphile-worker tells a restricting day field by its expansion, cron-parser by its text.
      return a === min && b === max ? "*" : `${a}-${b}`;
    };
    const steady = (zone: string, at: number) => offsetAt(zone, at - 2 * 86_400_000) === offsetAt(zone, at + 2 * 86_400_000);
    const cases: { expression: string; zone: string; after: Date }[] = [];
    while (cases.length < 500) {
      const expression = [field(0, 59), field(0, 23), random(3) === 0 ? field(1, 28) : "*", random(3) === 0 ? field(1, 12) : "*", random(4) === 0 ? field(0, 6) : "*"].join(" ");
      const zone = zones[random(zones.length)]!;
      const after = new Date(Date.UTC(2026, 0, 1) + random(2 * 365 * 24 * 60) * MINUTE + 1000 + random(58_000));
      if (steady(zone, after.getTime())) cases.push({ expression, zone, after });
    }
    const sql = await nextRunsSql(cases);
    let compared = 0;
    cases.forEach(({ expression, zone, after }, i) => {
      const want = CronExpressionParser.parse(expression, { currentDate: after, tz: zone }).next().toDate();
      if (!steady(zone, want.getTime())) return; // a transition between: not this test's business
      compared++;
      const label = `${expression} ?tz=${zone} after ${after.toISOString()}`;
      assert.equal(sql[i], want.toISOString(), `${label}: SQL`);
      assert.equal(nextRunsTs(expression, zone, after, 1)[0], want.toISOString(), `${label}: TypeScript`);
    });
    assert.ok(compared > 350, `compared ${compared} of 500`);
  });

  it("reads UTC's wall clock without zone data, as Intl reads it", () => {
    const intl = new Intl.DateTimeFormat("en-US", { timeZone: "UTC", hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", weekday: "short" });
    const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    for (let i = 0; i < 2000; i++) {
      const at = Date.UTC(1999, 0, 1) + Math.floor(Math.random() * 40 * 365 * 24 * 60) * 60_000 + Math.floor(Math.random() * 60_000);
      const parts = Object.fromEntries(intl.formatToParts(at).map((part) => [part.type, part.value]));
      const expected = { year: Number(parts.year), month: Number(parts.month), date: Number(parts.day), hour: Number(parts.hour), minute: Number(parts.minute), dow: days.indexOf(parts.weekday!) };
      assert.deepEqual(wallTimeAt("UTC", at), expected, new Date(at).toISOString());
      assert.deepEqual(wallTimeAt("Etc/UTC", at), expected);
    }
    assert.equal(zoneProblem("UTC"), null);
    assert.equal(offsetAt("UTC", Date.UTC(2025, 6, 1)), 0);
  });

  it("UTC lines keep graphile-worker's own matcher; SCHEDULER_TIMEZONE is the default zone", () => {
    const { entries } = parseCrontabText("0 9 * * * a\n0 9 * * * b ?tz=UTC\n0 9 * * * c ?tz=Asia/Tokyo", undefined, { defaultTimezone: "Europe/Berlin" });
    assert.deepEqual(entries.map((entry) => entry.timezone), ["Europe/Berlin", "UTC", "Asia/Tokyo"]);
    const [berlin, utc] = entries;
    const nine = { min: 0, hour: 9, date: 15, month: 1, dow: 4 }; // 2026-01-15T09:00Z, a Thursday
    assert.equal(utc!.item.match(nine), true);
    assert.equal(berlin!.item.match(nine), false, "09:00 Berlin is 08:00Z in January");
  });
});
