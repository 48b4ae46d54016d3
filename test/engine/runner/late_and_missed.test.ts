import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { after, describe, it } from "node:test";
import { parseCrontabOrThrow, parseCrontabText } from "../../../src/engine/crontab/parse.ts";
import { publishSchedules } from "../../../src/engine/crontab/sync.ts";
import { defineJob } from "../../../src/engine/jobs/define.ts";
import { schedulerMetrics } from "../../../src/engine/http/metrics.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { startScheduler, type SchedulerOptions } from "../../../src/scheduler.ts";
import { runCliProcess } from "../../helpers/cli.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

// Late and missed ticks: a schedule is late while a tick of it has waited longer
// than its grace with no run started for it or a later one; a tick nobody queued (every node
// down, fill= not reaching back) is recorded once as a 'missed' history row, by whichever node's
// cron resumes the entry (sql/engine/021).

const db = useTestDatabase();
const MINUTE = 60_000;

const tick = defineJob({ name: "tick", description: "does nothing", payload: {}, async run() {
  return { itemsProcessed: 0, itemsFailed: 0, message: "ok" };
} });

const publish = async (crontab: string) => publishSchedules(db.pool, parseCrontabOrThrow(crontab, "test crontab"), "test");
const minuteAgo = async (minutes: number): Promise<Date> =>
  (await db.pool.query("select date_trunc('minute', now()) - make_interval(mins => $1) as at", [minutes])).rows[0].at as Date;
const missedTicks = async (job: string): Promise<number[]> =>
  (await db.pool.query("select scheduled_for from scheduler.job_runs where job_name = $1 and status = 'missed' order by scheduled_for", [job])).rows.map((row) => row.scheduled_for.getTime());
const databaseNow = async (): Promise<number> => (await db.pool.query<{ now: Date }>("select clock_timestamp() as now")).rows[0]!.now.getTime();
const view = async (job: string) =>
  (await db.pool.query("select late, late_since, grace_ms, missed_count, enabled, next_run, run_count from scheduled_jobs where job_name = $1", [job])).rows[0];

/** graphile-worker's cron queueing `tick` for `identifier`: the statement its scheduleCronJobs runs. */
async function cronQueues(identifier: string, at: Date): Promise<void> {
  await db.pool.query(
    `insert into graphile_worker._private_known_crontabs as k (identifier, known_since, last_execution) values ($1, $2, $2)
     on conflict (identifier) do update set last_execution = excluded.last_execution
     where k.last_execution is null or k.last_execution < excluded.last_execution`,
    [identifier, at],
  );
}

const running: SchedulerHandle[] = [];
after(async () => {
  await Promise.all(running.map((handle) => handle.stop()));
});

describe("missed ticks: recorded once, where graphile-worker's cron jumps over them", () => {
  it("records every tick a jump of last_execution passes over, in the entry's own zone, and nothing else", async () => {
    await publish("*/15 * * * * tick ?id=quarterly\n30 1 * * * tick ?id=nightly_ny&tz=America/New_York\n* * * * * tick ?id=paused_one\n");
    await db.pool.query("update scheduler.schedules set updated_at = '2025-01-01Z'");
    await db.pool.query("select scheduler.pause_job('paused_one', 'maintenance')");
    const start = new Date("2025-11-01T00:00:00Z");
    for (const id of ["quarterly", "nightly_ny", "paused_one", "not_in_crontab"]) await cronQueues(id, start);

    // One minute later: nothing was passed over.
    await cronQueues("quarterly", new Date(start.getTime() + 15 * MINUTE));
    assert.deepEqual(await missedTicks("quarterly"), []);
    // An hour later: the three quarters between were never queued.
    await cronQueues("quarterly", new Date(start.getTime() + 75 * MINUTE));
    assert.deepEqual(await missedTicks("quarterly"), [30, 45, 60].map((m) => start.getTime() + m * MINUTE));
    // The same update again (another node losing the race) changes nothing.
    await cronQueues("quarterly", new Date(start.getTime() + 75 * MINUTE));
    assert.equal((await missedTicks("quarterly")).length, 3);

    // 01:30 New York across the end of DST (2 November 2025): EDT, then EST.
    await cronQueues("nightly_ny", new Date("2025-11-04T06:30:00Z"));
    assert.deepEqual((await missedTicks("nightly_ny")).map((ms) => new Date(ms).toISOString()), [
      "2025-11-01T05:30:00.000Z",
      "2025-11-02T05:30:00.000Z",
      "2025-11-03T06:30:00.000Z",
    ]);

    await cronQueues("paused_one", new Date(start.getTime() + 60 * MINUTE));
    await cronQueues("not_in_crontab", new Date(start.getTime() + 60 * MINUTE));
    assert.deepEqual(await missedTicks("paused_one"), [], "a paused entry's ticks were not due");
    assert.deepEqual(await missedTicks("not_in_crontab"), [], "an identifier no crontab has now");

    const [row] = (await db.pool.query("select task, attempt, status, started_at, finished_at, error, details from scheduler.job_runs where job_name = 'quarterly' order by scheduled_for limit 1")).rows;
    assert.equal(row.task, "tick");
    assert.equal(row.started_at.getTime(), start.getTime() + 30 * MINUTE, "dated at its tick, so history lists it in order");
    assert.match(row.error, /no scheduler node queued this tick: none was running at 2025-11-01T00:30Z/);
    assert.equal(row.details.reason, "missed");
    assert.equal(Number((await view("quarterly")).missed_count), 3);
    assert.equal(Number((await view("quarterly")).run_count), 0, "missed ticks are not runs");
  });

  it("counts no tick from before the entry last changed", async () => {
    await publish("*/15 * * * * tick ?id=edited\n");
    const start = await minuteAgo(120);
    await cronQueues("edited", start);
    // The entry was (re)written 20 minutes ago: only the ticks since can have been missed.
    await db.pool.query("update scheduler.schedules set updated_at = now() - interval '20 minutes' where job_name = 'edited'");
    await cronQueues("edited", await minuteAgo(0));
    const missed = await missedTicks("edited");
    const since = Date.now() - 20 * MINUTE;
    assert.ok(missed.length >= 1 && missed.length <= 2, `${missed.length} missed`);
    assert.ok(missed.every((ms) => ms > since - MINUTE), "none from before the change");
  });

  it("two nodes starting together after an outage: backfill runs what fill= reaches, the rest is recorded missed, each tick once", async () => {
    const crontab = "* * * * * tick ?id=every_minute&fill=3m\n";
    const options: SchedulerOptions = { connectionString: db.connectionString, platform: false, taskDirectory: null, jobs: [tick], logger: testLogger, bootstrapJobs: [], concurrency: 2, crontab, http: "127.0.0.1:0" };
    const first = await startScheduler(options);
    await first.stop();
    // Every node was down for the last ten minutes: back-date the state it left.
    const last = await minuteAgo(10);
    await db.pool.query("delete from scheduler.job_runs where job_name = 'every_minute'");
    await db.pool.query("update scheduler.schedules set updated_at = now() - interval '1 hour' where job_name = 'every_minute'");
    await db.pool.query("update graphile_worker._private_known_crontabs set last_execution = $1 where identifier = 'every_minute'", [last]);
    await db.pool.query("delete from graphile_worker._private_jobs");

    const nodes = await Promise.all([startScheduler(options), startScheduler(options)]);
    running.push(...nodes);
    // Minutes that turned between reading `last` and the nodes' backfill: each puts one more
    // minute of the outage out of fill=3m's reach (CI's loaded machines start nodes slowly).
    const turned = (Math.floor(Date.now() / MINUTE) * MINUTE - (last.getTime() + 10 * MINUTE)) / MINUTE;
    const rows = await eventually(async () => {
      const { rows: found } = await db.pool.query("select scheduled_for, status from scheduler.job_runs where job_name = 'every_minute' and status in ('missed', 'success') order by scheduled_for");
      const backfilled = found.filter((row) => row.status === "success").length;
      return backfilled >= 3 && found;
    }, { timeoutMs: 20_000, what: "the backfilled ticks to run" });
    const missed = rows.filter((row) => row.status === "missed").map((row) => row.scheduled_for.getTime());
    const ran = rows.filter((row) => row.status === "success").map((row) => row.scheduled_for.getTime());
    assert.equal(new Set(missed).size, missed.length, "each missed tick recorded once");
    assert.equal(new Set(ran).size, ran.length, "each tick run once");
    assert.ok(missed.length >= 5 && missed.length <= 7 + turned, `${missed.length} missed of the ${9 + turned} minutes fill=3m does not reach`);
    // Missed and run ticks tile the outage: every minute after the last tick before it, once.
    const all = [...missed, ...ran].sort((a, b) => a - b);
    all.forEach((ms, i) => assert.equal(ms, last.getTime() + (i + 1) * MINUTE, `minute ${i + 1} after the outage began`));
    assert.ok(Math.max(...missed) < Math.min(...ran), "the missed ones are those before the backfill window");

    assert.equal(Number((await view("every_minute")).missed_count), missed.length);
    // A scrape waits at most 2 s (METRICS_REFRESH_WAIT_MS) for the cluster gauges, then serves
    // the last values, none yet on a fresh node: on a loaded machine the first refresh can take
    // longer. Scrape again until the gauge is there; its value is checked below.
    const scrapes = await Promise.all(nodes.map(async (node) => {
      let text = "";
      await eventually(async () => {
        text = await (await fetch(`http://${node.httpAddress}/metrics`)).text();
        return /^scheduler_schedule_missed_total\{schedule="every_minute"\} /m.test(text);
      }, { timeoutMs: 15_000, what: "the cluster gauges in /metrics" }).catch(() => {});
      return text;
    }));
    let recordedHere = 0;
    for (const text of scrapes) {
      assert.match(text, new RegExp(`^scheduler_schedule_missed_total\\{schedule="every_minute"\\} ${missed.length}$`, "m"), "cluster-wide, the same on every node");
      recordedHere += Number(/^scheduler_job_runs_total\{schedule="every_minute",task="tick",status="missed"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    }
    assert.equal(recordedHere, missed.length, "node-local: summed over the nodes, each missed tick counts once");
    // Tick precision: every run's start minus its tick, observed by the node that ran it.
    const observed = scrapes.reduce((sum, text) => sum + Number(/^scheduler_job_start_delay_seconds_count\{schedule="every_minute"\} (\d+)$/m.exec(text)?.[1] ?? 0), 0);
    assert.ok(observed >= 3, `${observed} start delays observed`);
    const status = JSON.parse((await runCliProcess(["status", "--json"], { DATABASE_URL: db.connectionString })).stdout) as { jobs: { job_name: string; start_delay_p99_ms: number | null; start_delay_ticks: number }[] };
    const precision = status.jobs.find((job) => job.job_name === "every_minute")!;
    assert.ok(precision.start_delay_ticks >= ran.length, `over the ticks that ran (missed ones have no start; a minute may have turned since): ${precision.start_delay_ticks}`);
    // The backfilled ticks started minutes after theirs.
    assert.ok(typeof precision.start_delay_p99_ms === "number" && precision.start_delay_p99_ms >= MINUTE, JSON.stringify(precision));

    const history = await runCliProcess(["history", "every_minute", "--limit", "50"], { DATABASE_URL: db.connectionString });
    assert.equal(history.code, 0, history.stderr);
    assert.equal(history.stdout.match(/missed/g)?.length ?? 0, missed.length, history.stdout);
  });
});

describe("a node starting after ticks passed while no node ran", () => {
  it("records them missed at once, from the entry's publication for one that never ran, and shows no entry late for them", async () => {
    // An every-minute and an every-10-minutes entry that never ran, and one that had.
    const crontab = "* * * * * tick ?id=never_minutely\n*/10 * * * * tick ?id=never_ten\n* * * * * tick ?id=ran_before\n";
    const options: SchedulerOptions = { connectionString: db.connectionString, platform: false, taskDirectory: null, jobs: [tick], logger: testLogger, bootstrapJobs: [], concurrency: 2, crontab, http: "127.0.0.1:0" };
    const first = await startScheduler(options);
    await first.stop();
    // That node published the entries and was stopped before their first tick; every node then
    // stayed down for 25 minutes (the state it left, dated back). ran_before last ran 30 minutes ago.
    const ids = ["never_minutely", "never_ten", "ran_before"];
    await db.pool.query("delete from scheduler.job_runs where job_name = any ($1)", [ids]);
    await db.pool.query("delete from graphile_worker._private_jobs");
    await db.pool.query("update scheduler.schedules set updated_at = now() - interval '25 minutes' where job_name = any ($1)", [ids]);
    await db.pool.query("update graphile_worker._private_known_crontabs set known_since = now() - interval '25 minutes', last_execution = null where identifier = any ($1)", [ids]);
    await db.pool.query("update graphile_worker._private_known_crontabs set last_execution = date_trunc('minute', now()) - interval '30 minutes' where identifier = 'ran_before'");
    await db.pool.query("update scheduler.schedules set updated_at = now() - interval '1 hour' where job_name = 'ran_before'");
    const { rows: [{ published }] } = await db.pool.query("select updated_at as published from scheduler.schedules where job_name = 'never_minutely'");

    const { rows: [{ lastRan }] } = await db.pool.query("select last_execution as \"lastRan\" from graphile_worker._private_known_crontabs where identifier = 'ran_before'");
    // The node's cron starts between these two readings of the database's clock (a loaded
    // machine may take seconds over the rest of the start).
    const lower = await databaseNow();
    const node = await startScheduler(options);
    running.push(node);
    const upper = await databaseNow();
    // Started: no entry is late.
    for (const id of ids) {
      const row = await view(id);
      assert.equal(row.late, false, `${id}: not late for ticks no node could run`);
      assert.equal(row.late_since, null);
    }
    const ticksBetween = (everyMinutes: number, afterMs: number, beforeMs: number) => {
      const ticks: number[] = [];
      for (let at = Math.floor(afterMs / MINUTE) * MINUTE + MINUTE; at < beforeMs; at += MINUTE) if (new Date(at).getUTCMinutes() % everyMinutes === 0) ticks.push(at);
      return ticks;
    };
    const entries: [string, number, number][] = [["never_minutely", 1, published.getTime()], ["never_ten", 10, published.getTime()], ["ran_before", 1, lastRan.getTime()]];
    // Recorded at once: every tick older than 10 s before the cron's start (so at least those
    // before lower - 10 s), each once, none from after the start.
    for (const [id, every, from] of entries) {
      const missed = await missedTicks(id);
      const surely = ticksBetween(every, from, lower - 10_000);
      const possibly = ticksBetween(every, from, upper);
      const shown = missed.map((at) => new Date(at).toISOString()).join(", ");
      assert.ok(surely.length >= (every === 1 ? 23 : 2), `${id}: ${surely.length} ticks passed`);
      assert.ok(surely.every((at) => missed.includes(at)), `${id}: every tick older than 10 s recorded at once: ${shown}`);
      assert.ok(missed.every((at) => possibly.includes(at)) && new Set(missed).size === missed.length, `${id}: each once, none after the start: ${shown}`);
    }

    // Ten seconds on, the rest before the start is recorded too: each tick once, none twice.
    const expected = ticksBetween(1, published.getTime(), lower);
    await eventually(async () => (await missedTicks("never_minutely")).filter((at) => at < lower).length === expected.length, { timeoutMs: 20_000, what: "the ticks of the last 10 s before the start recorded" });
    const minutely = await missedTicks("never_minutely");
    assert.deepEqual(minutely.filter((at) => at < lower), expected);
    assert.ok(minutely.every((at) => at < upper));
    assert.equal(Number((await view("never_minutely")).missed_count), minutely.length);
    const ten = await missedTicks("never_ten");
    // The bookkeeping moved past them: no node queues one of them later (a fill= backfill included).
    const { rows: [known] } = await db.pool.query("select last_execution from graphile_worker._private_known_crontabs where identifier = 'never_minutely'");
    assert.ok(known.last_execution.getTime() >= minutely.at(-1)!, "last_execution at or after the newest missed tick");

    const status = await runCliProcess(["status"], { DATABASE_URL: db.connectionString });
    assert.equal(status.code, 0, status.stderr);
    assert.doesNotMatch(status.stdout, /^(never_|ran_before).*LATE/m);
    assert.match(status.stdout, new RegExp(`^never_ten .*${ten.length} missed`, "m"));
    // The cluster gauges of a fresh node may take a scrape or two to arrive (see above).
    let text = "";
    await eventually(async () => {
      text = await (await fetch(`http://${node.httpAddress}/metrics`)).text();
      return /^scheduler_schedule_late\{schedule="never_minutely"\} /m.test(text);
    }, { timeoutMs: 15_000, what: "the cluster gauges in /metrics" });
    for (const id of ids) assert.match(text, new RegExp(`^scheduler_schedule_late\\{schedule="${id}"\\} 0$`, "m"));
  });
});

describe("scheduler.record_passed_ticks, beside a node queueing a tick", () => {
  it("skips an entry whose bookkeeping row another session holds, never waiting for it, and records the others", async () => {
    await publish("*/5 * * * * tick ?id=held_row\n*/5 * * * * tick ?id=free_row\n");
    await db.pool.query("update scheduler.schedules set updated_at = now() - interval '1 hour' where job_name in ('held_row', 'free_row')");
    for (const id of ["held_row", "free_row"]) await cronQueues(id, await minuteAgo(60));
    // Another node's cron, in the middle of queueing held_row's tick: its upsert holds the row.
    const other = await db.pool.connect();
    try {
      await other.query("begin");
      await other.query("update graphile_worker._private_known_crontabs set last_execution = last_execution where identifier = 'held_row'");
      // A wait for the row would fail on the lock timeout (and the test would not hang).
      const recorder = await db.pool.connect();
      let entries: number;
      try {
        await recorder.query("begin");
        await recorder.query("set local lock_timeout = '3s'");
        entries = (await recorder.query("select scheduler.record_passed_ticks(array['held_row', 'free_row'], now(), 'test') as entries")).rows[0].entries;
        await recorder.query("commit");
      } catch (error) {
        await recorder.query("rollback");
        throw error;
      } finally {
        recorder.release();
      }
      assert.equal(entries, 1);
      assert.ok((await missedTicks("free_row")).length >= 11);
      assert.deepEqual(await missedTicks("held_row"), []);
    } finally {
      await other.query("rollback");
      other.release();
    }
    // The next pass, the row free again, records the held entry's ticks too; once each.
    await db.pool.query("select scheduler.record_passed_ticks(array['held_row', 'free_row'], now(), 'test')");
    assert.deepEqual(await missedTicks("held_row"), await missedTicks("free_row"));
  });
});

describe("late schedules", () => {
  it("is late once a tick has waited longer than grace + jitter with no run started for it or a later tick", async () => {
    await publish("0 * * * * tick ?id=hourly\n* * * * * tick ?id=strict&grace=5s\n* * * * * tick ?id=patient&grace=1h\n0 * * * * tick ?id=held\n");
    // Loaded at half past, about three hours ago: its first tick since is then the next full
    // hour, whatever the second (a change in the last second before a tick does not count it).
    await db.pool.query("update scheduler.schedules set updated_at = date_trunc('hour', now()) - interval '150 minutes' where job_name in ('hourly', 'strict', 'held')");
    await db.pool.query("update scheduler.schedules set updated_at = now() - interval '30 minutes' where job_name = 'patient'");
    const hourly = await view("hourly");
    assert.equal(hourly.late, true, "no run for 3 hours of hourly ticks");
    assert.equal(hourly.grace_ms, 60_000);
    const { rows: [expected] } = await db.pool.query("select date_trunc('hour', updated_at) + interval '1 hour' as first from scheduler.schedules where job_name = 'hourly'");
    assert.equal(hourly.late_since.getTime(), expected.first.getTime(), "since the first tick after the entry was loaded");

    // A run for the current hour's tick (whatever its outcome) ends the lateness; one for an older tick does not.
    // (Two hours back: the tick after it is then an hour old; the current hour's own tick is
    // still within its grace during the first minute of the hour.)
    await db.pool.query("insert into scheduler.job_runs (job_name, task, scheduled_for, status) values ('hourly', 'tick', date_trunc('hour', now()) - interval '2 hours', 'failed')");
    assert.equal((await view("hourly")).late, true);
    await db.pool.query("insert into scheduler.job_runs (job_name, task, scheduled_for, status) values ('hourly', 'tick', date_trunc('hour', now()), 'failed')");
    assert.equal((await view("hourly")).late, false);
    assert.equal((await view("hourly")).late_since, null);

    assert.equal((await view("patient")).late, false, "grace=1h: not yet");
    assert.equal((await view("strict")).late, true);
    // A tick recorded missed is handled: it is no longer late for it, but it is for the ticks
    // after it that have waited past their grace.
    const { rows: [missedTick] } = await db.pool.query("insert into scheduler.job_runs (job_name, task, scheduled_for, started_at, status) values ('strict', 'tick', date_trunc('minute', now()) - interval '3 minutes', date_trunc('minute', now()) - interval '3 minutes', 'missed') returning scheduled_for");
    const strictNow = await view("strict");
    assert.equal(strictNow.late, true);
    assert.equal(strictNow.late_since.getTime(), missedTick.scheduled_for.getTime() + MINUTE, "late since the tick after the missed one");

    // Paused: not late; resumed: the ticks that fell in the pause were not due.
    await db.pool.query("select scheduler.pause_job('held', 'disk full')");
    assert.deepEqual({ ...(await view("held")), next_run: null, late_since: null }, { late: false, late_since: null, grace_ms: 60_000, missed_count: "0", enabled: false, next_run: null, run_count: "0" });
    await db.pool.query("select scheduler.resume_job('held')");
    assert.equal((await view("held")).late, false, "resumed just now: no tick has waited since");

    const metrics = schedulerMetrics({ db: db.pool, events: new EventEmitter(), packs: [], nodeId: "test", deadAfterMs: 30_000, logger: testLogger, cacheMs: 0 });
    const text = await metrics.render();
    metrics.stop();
    assert.match(text, /^# TYPE scheduler_schedule_late gauge$/m);
    assert.match(text, /^scheduler_schedule_late\{schedule="strict"\} 1$/m);
    assert.match(text, /^scheduler_schedule_late\{schedule="hourly"\} 0$/m);
    assert.match(text, /^scheduler_schedule_late\{schedule="held"\} 0$/m);
    assert.match(text, /^# TYPE scheduler_schedule_missed_total counter$/m);
    assert.match(text, /^scheduler_schedule_missed_total\{schedule="strict"\} 1$/m);

    const status = await runCliProcess(["status"], { DATABASE_URL: db.connectionString });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^strict .*LATE.*1 missed/m);
    assert.match(status.stdout, /strict: late: its tick at .* has not started after a grace of 5s/);
    const json = JSON.parse((await runCliProcess(["status", "--json"], { DATABASE_URL: db.connectionString })).stdout);
    const strict = json.jobs.find((job: { job_name: string }) => job.job_name === "strict");
    assert.equal(strict.late, true);
    assert.equal(strict.missed_count, 1);
  });

  it("?grace= takes a duration of at least a second", () => {
    const { entries, problems } = parseCrontabText("0 * * * * tick ?id=a&grace=5m\n0 * * * * tick ?id=b&grace=0s\n0 * * * * tick ?id=c&grace=soon\n");
    assert.equal(entries.find((entry) => entry.identifier === "a")?.graceMs, 300_000);
    assert.deepEqual(problems.map((problem) => problem.line), [2, 3]);
    assert.match(problems[0]!.message, /\?grace=0s: expected a duration of at least 1s/);
  });
});
