import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CronExpressionParser } from "cron-parser";
import { parseCrontabText } from "../../../src/engine/crontab/parse.ts";
import { useTestDatabase } from "../../helpers/db.ts";

// scheduled_jobs.next_run comes from scheduler.cron_next (PL/pgSQL) over graphile-worker's
// own expansion of each expression. Checked here against cron-parser, an independent
// implementation, on fixed hard cases and on random expressions.

const db = useTestDatabase();

async function nextRuns(cases: { expression: string; after: Date }[]): Promise<(Date | null)[]> {
  const rows = cases.map(({ expression, after }) => {
    const { entries, problems } = parseCrontabText(`${expression} some_task`);
    assert.deepEqual(problems, [], expression);
    return { ...entries[0]!.fields, after: after.toISOString() };
  });
  const { rows: result } = await db.pool.query<{ next: Date | null }>(
    `select scheduler.cron_next(array(select json_array_elements_text(e->'minutes')::int), array(select json_array_elements_text(e->'hours')::int), array(select json_array_elements_text(e->'dates')::int), array(select json_array_elements_text(e->'months')::int), array(select json_array_elements_text(e->'dows')::int), (e->>'after')::timestamptz) as next
     from json_array_elements($1::json) with ordinality as t(e, n)
     order by n`,
    [JSON.stringify(rows)],
  );
  return result.map((row) => row.next);
}

function reference(expression: string, after: Date): Date {
  return CronExpressionParser.parse(expression, { currentDate: after, tz: "UTC" }).next().toDate();
}

function random(max: number): number {
  return Math.floor(Math.random() * max);
}

/** A random field in the syntax graphile-worker accepts, never a full range unless written `*`. */
function randomField(min: number, max: number): string {
  const span = max - min + 1;
  for (;;) {
    const kind = random(5);
    let text: string;
    if (kind === 0) return "*";
    if (kind === 1) text = `*/${2 + random(Math.max(1, span - 2))}`;
    else if (kind === 2) text = String(min + random(span));
    else if (kind === 3) {
      const a = min + random(span - 1);
      text = `${a}-${a + 1 + random(max - a)}`;
    } else {
      text = Array.from({ length: 2 + random(3) }, () => String(min + random(span))).join(",");
    }
    const values = new Set<number>();
    for (const part of text.split(",")) {
      if (part.startsWith("*/")) for (let v = min; v <= max; v += Number(part.slice(2))) values.add(v);
      else if (part.includes("-")) {
        const [a, b] = part.split("-").map(Number) as [number, number];
        for (let v = a; v <= b; v++) values.add(v);
      } else values.add(Number(part));
    }
    if (values.size < span) return text;
  }
}

describe("scheduler.cron_next", () => {
  it("matches hand-checked cases", async () => {
    const after = new Date("2026-11-27T02:17:30Z");
    const cases = [
      { expression: "*/10 * * * *", want: "2026-11-27T02:20:00Z" },
      { expression: "0 */2 * * *", want: "2026-11-27T04:00:00Z" },
      { expression: "0 3 * * *", want: "2026-11-27T03:00:00Z" },
      { expression: "0 1 * * *", want: "2026-11-28T01:00:00Z" },
      { expression: "0 * * * *", want: "2026-11-27T03:00:00Z" },
      { expression: "0 */6 * * *", want: "2026-11-27T06:00:00Z" },
      { expression: "0 0 29 2 *", want: "2028-02-29T00:00:00Z" },
      // day of month and day of week both restrict: either matches (the Monday comes first)
      { expression: "0 0 1 * 1", want: "2026-11-30T00:00:00Z" },
      // 7 is Sunday too
      { expression: "30 12 * * 7", want: "2026-11-29T12:30:00Z" },
      { expression: "0 0 1 1 *", want: "2027-01-01T00:00:00Z" },
    ];
    const got = await nextRuns(cases.map(({ expression }) => ({ expression, after })));
    cases.forEach(({ expression, want }, i) => assert.equal(got[i]?.toISOString(), new Date(want).toISOString(), expression));
  });

  it("is null for an expression that never fires", async () => {
    const [next] = await nextRuns([{ expression: "0 0 31 4 *", after: new Date() }]);
    assert.equal(next, null);
  });

  it("rounds up to the next whole minute, and keeps a minute that is exactly now", async () => {
    const [a, b] = await nextRuns([
      { expression: "* * * * *", after: new Date("2026-11-27T02:17:00.001Z") },
      { expression: "* * * * *", after: new Date("2026-11-27T02:17:00.000Z") },
    ]);
    assert.equal(a?.toISOString(), "2026-11-27T02:18:00.000Z");
    assert.equal(b?.toISOString(), "2026-11-27T02:17:00.000Z");
  });

  it("agrees with cron-parser on 600 random expressions", async () => {
    const cases = Array.from({ length: 600 }, () => {
      const expression = [randomField(0, 59), randomField(0, 23), randomField(1, 31), randomField(1, 12), randomField(0, 6)].join(" ");
      // any instant from now to 3 years on, never on a whole minute
      const after = new Date(Date.UTC(2026, 0, 1) + random(3 * 365 * 24 * 60) * 60_000 + 1000 + random(58_000));
      return { expression, after };
    });
    const got = await nextRuns(cases);
    let compared = 0;
    cases.forEach(({ expression, after }, i) => {
      let want: Date | null;
      try {
        want = reference(expression, after);
      } catch {
        want = null; // e.g. 31 in a month that has no 31st: cron-parser refuses, we say never
      }
      if (want === null) return;
      compared++;
      assert.equal(got[i]?.toISOString(), want.toISOString(), `${expression} after ${after.toISOString()}`);
    });
    assert.ok(compared > 400, `compared ${compared} of 600`);
  });
});
