import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeSchedule } from "../../../src/engine/crontab/words.ts";

describe("a schedule in words (the dashboard)", () => {
  it("says the common shapes and gives null for the rest", () => {
    const cases: [string, string | null][] = [
      ["* * * * *", "every minute"],
      ["*/10 * * * *", "every 10 minutes"],
      ["0 * * * *", "hourly at :00"],
      ["5 * * * *", "hourly at :05"],
      ["0 */2 * * *", "every 2 hours at :00"],
      ["0 3 * * *", "daily at 03:00"],
      ["30 7,19 * * *", "daily at 07:30, 19:30"],
      ["30 7 * * 1-5", "on weekdays at 07:30"],
      ["0 12 * * 1", "on Mondays at 12:00"],
      ["0 12 * * 0,3", "on Sundays, Wednesdays at 12:00"],
      ["0 4 1 * *", "monthly on day 1 at 04:00"],
      ["0 4 * 2 *", null],
      ["0-30/5 * * * *", null],
      ["0 4 1 * 1", null],
      ["bad", null],
    ];
    for (const [expression, words] of cases) assert.equal(describeSchedule(expression), words, expression);
  });
});
