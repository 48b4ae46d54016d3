import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseCrontabOrThrow, parseCrontabText } from "../../../src/engine/crontab/parse.ts";
import { SchedulerError } from "../../../src/engine/errors.ts";

const knownNames = new Set(["cleanup_inactive_sessions", "database_cleanup"]);
const known = { names: () => knownNames, checkPayload: () => null };

describe("crontab parsing", () => {
  it("reads entries, descriptions from the comment above, and the schedule text", () => {
    const { entries, problems } = parseCrontabText(
      ["# header comment", "", "# Ends idle sessions.", "*/10 * * * * cleanup_inactive_sessions", "0 3 * * * database_cleanup ?id=nightly {enforce: false}"].join("\n"),
      known,
    );
    assert.deepEqual(problems, []);
    assert.equal(entries.length, 2);
    assert.equal(entries[0]!.description, "Ends idle sessions.");
    assert.equal(entries[0]!.schedule, "*/10 * * * *");
    assert.equal(entries[1]!.identifier, "nightly");
    assert.equal(entries[1]!.description, null);
    assert.deepEqual(entries[1]!.payload, { enforce: false });
    assert.deepEqual(entries[0]!.fields.minutes, [0, 10, 20, 30, 40, 50]);
  });

  it("applies safe defaults: the task's queue, one waiting run, 3 attempts, the identifier in the payload", () => {
    const [entry] = parseCrontabText("0 3 * * * database_cleanup ?id=nightly", known).entries;
    assert.equal(entry!.item.options.queueName, "database_cleanup");
    assert.equal(entry!.item.options.jobKey, "cron:nightly");
    assert.equal(entry!.item.options.jobKeyMode, "replace");
    assert.equal(entry!.item.options.maxAttempts, 3);
    assert.deepEqual(entry!.item.payload, { _schedule: "nightly" });
  });

  it("keeps a line's own options, and gives backfilling entries no job key", () => {
    const { entries } = parseCrontabText(
      ["0 3 * * * database_cleanup ?queue=q&max=7&jobKey=k", "* * * * * cleanup_inactive_sessions ?fill=1h"].join("\n"),
      known,
    );
    assert.equal(entries[0]!.item.options.queueName, "q");
    assert.equal(entries[0]!.item.options.maxAttempts, 7);
    assert.equal(entries[0]!.item.options.jobKey, "k");
    assert.equal(entries[1]!.item.options.jobKey, undefined);
  });

  it("reports every bad line with its number", () => {
    const text = [
      "# fine",
      "*/10 * * * * cleanup_inactive_sessions",
      "61 * * * * database_cleanup ?id=a",
      "* * * * * no_such_task",
      "* * * * cleanup_inactive_sessions ?id=b",
      "0 3 * * * database_cleanup ?bogus=1 ",
      "0 4 * * * cleanup_inactive_sessions",
    ].join("\n");
    const { problems } = parseCrontabText(text, known);
    assert.deepEqual(problems.map((problem) => problem.line), [3, 4, 5, 6, 7]);
    assert.match(problems[0]!.message, /Too large value '61'/);
    assert.match(problems[1]!.message, /task 'no_such_task' has no task file.*known tasks: cleanup_inactive_sessions, database_cleanup/);
    assert.match(problems[2]!.message, /line 5 has 4 time field\(s\) before its task 'cleanup_inactive_sessions', a line needs 5 \(MIN HOUR DOM MON DOW\): a field is missing/);
    assert.match(problems[3]!.message, /unsupported key 'bogus'/);
    assert.match(problems[4]!.message, /already used on line 2/);
  });

  it("suggests the task a misspelt name was meant to be", () => {
    const { problems } = parseCrontabText("0 3 * * * databse_cleanup\n0 4 * * * zzz", known);
    assert.match(problems[0]!.message, /task 'databse_cleanup' has no task file \(expected tasks\/databse_cleanup\.ts\); did you mean 'database_cleanup'\?/);
    assert.doesNotMatch(problems[1]!.message, /did you mean/);
  });

  it("names every option a line may take in its fix", () => {
    assert.throws(
      () => parseCrontabOrThrow("* * * * * nope", "etc/crontab", known),
      (error: unknown) => error instanceof SchedulerError && ["id=", "fill=", "max=", "queue=", "jobKey=", "jobKeyMode=", "priority=", "tz=", "overlap=", "jitter=", "grace="].every((option) => error.hint!.includes(option)),
    );
  });

  it("throws one error naming file and lines, with exit code 2", () => {
    assert.throws(
      () => parseCrontabOrThrow("* * * * * nope\n* * * * * nope2", "etc/crontab", known),
      (error: unknown) => error instanceof SchedulerError && error.exitCode === 2 && /etc\/crontab:1:/.test(error.message) && /etc\/crontab:2:/.test(error.message),
    );
  });

  it("accepts an empty crontab", () => {
    assert.deepEqual(parseCrontabOrThrow("# nothing yet\n", "crontab", known), []);
  });

  it("takes our options (tz, overlap, jitter) off the line and leaves graphile-worker's to it", () => {
    const catalog = { ...known, isExclusive: () => true };
    const { entries, problems } = parseCrontabText("0 9 * * 1-5 database_cleanup ?id=weekday&tz=Europe/Berlin&max=5&overlap=skip&jitter=1m30s {enforce: false}", catalog);
    assert.deepEqual(problems, []);
    const [entry] = entries;
    assert.equal(entry!.identifier, "weekday");
    assert.equal(entry!.timezone, "Europe/Berlin");
    assert.equal(entry!.overlap, "skip");
    assert.equal(entry!.jitterMs, 90_000);
    assert.equal(entry!.item.options.maxAttempts, 5);
    assert.deepEqual(entry!.item.payload, { enforce: false, _schedule: "weekday", _overlap: "skip", _jitter_max_ms: 90_000 });
    const { entries: plain } = parseCrontabText("0 9 * * * database_cleanup ?tz=UTC", catalog);
    assert.equal(plain[0]!.item.match(({ min: 0, hour: 9, date: 1, month: 1, dow: 4 })), true);
  });

  it("refuses a fill= over 90 days on a zoned line, and each of our options given twice", () => {
    const { problems } = parseCrontabText("0 9 * * * database_cleanup ?tz=Asia/Tokyo&fill=13w\n0 9 * * * database_cleanup ?id=x&tz=UTC&tz=Asia/Tokyo", known);
    assert.deepEqual(problems.map((problem) => problem.line), [1, 2]);
    assert.match(problems[0]!.message, /\?fill= of a line with a time zone may be at most 90 days/);
    assert.match(problems[1]!.message, /option 'tz' is given more than once/);
  });
});
