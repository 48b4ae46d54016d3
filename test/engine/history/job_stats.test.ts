import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { migrate as migratePlan } from "../../../src/engine/db/migrate.ts";
import { schemaPlanOf } from "../../../src/engine/db/schema-plan.ts";
import { projectRoot } from "../../../src/engine/db/sql-file.ts";
import { parseCrontabOrThrow } from "../../../src/engine/crontab/parse.ts";
import { publishSchedules } from "../../../src/engine/crontab/sync.ts";
import { pruneRuns, recordOutcome, recordRunning, type RunRecord } from "../../../src/engine/history/runs.ts";
import { apiRoutes } from "../../../src/engine/http/api.ts";
import { JsonText } from "../../../src/engine/http/types.ts";
import { createTestDatabase, testLogger } from "../../helpers/db.ts";
import { migrateEngineBefore } from "../../helpers/migrations.ts";

// job_stats (sql/engine/025): each job's lifetime totals and last runs, kept by triggers on
// job_runs, and each entry's remembered next tick. What scheduled_jobs shows from them must be
// what it computed from the whole history before: checked against the view as 024 defined it
// (bench/fixtures/before-025), on the seed of existing rows and as runs are recorded,
// abandoned and pruned.

const BEFORE_025 = fs.readFileSync(path.join(projectRoot, "bench/fixtures/before-025/scheduled_jobs.sql"), "utf8").trim().replace(/;$/, "");
const COMPARED = `job_name, task, schedule, enabled, last_run, next_run, last_status, last_error, run_count, last_duration_ms,
  success_count, failure_count, paused_as, skipped_count, late, late_since, missed_count`;
const before025 = `select ${COMPARED} from (${BEFORE_025}) v order by job_name`;
// What 024 called run_count counted attempts: scheduled_jobs has them as attempt_count now
// (sql/engine/034), and run_count counts runs (first attempts).
const now025 = `select ${COMPARED.replace("run_count", "attempt_count as run_count")} from scheduled_jobs order by job_name`;

/** A crontab whose ticks are hours away from now in every zone used, so no tick passes while the test runs. */
async function crontabAwayFromNow(db: { pool: { query: (text: string) => Promise<{ rows: { h: number; m: number }[] }> } }): Promise<string> {
  const { rows: [at] } = await db.pool.query("select extract(hour from now() + interval '6 hours')::int as h, extract(minute from now())::int as m");
  const { h, m } = at!;
  return [
    `${m} ${h} * * * stats_task ?id=daily_utc`,
    `${m} ${(h + 1) % 24} * * * stats_task ?id=daily_berlin&tz=Europe/Berlin`,
    `${m} ${(h + 2) % 24} * * * other_task ?id=daily_late`,
    `${m} ${h} * * * stats_task ?id=paused_one`,
    `${m} ${h} * * * stats_task ?id=never_ran`,
  ].join("\n");
}

/** History for the entries: handled ticks a day apart, every status, a long-running row, ad-hoc task runs. */
const HISTORY = `
insert into scheduler.job_runs (job_name, task, attempt, scheduled_for, started_at, finished_at, duration_ms, status, error)
select e.job_name, e.task, 1 + (g % 3), tick, tick + interval '2 seconds', tick + interval '5 seconds', 3000,
       case when g % 11 = 0 then 'skipped' when g % 5 = 0 then 'failed' when g % 7 = 0 then 'abandoned' else 'success' end,
       case when g % 5 = 0 then 'boom ' || g end
from (select job_name, task from scheduler.schedules where job_name <> 'never_ran') e,
     generate_series(1, 40) g,
     lateral (select scheduler.schedule_next(s, now() - make_interval(days => 41 - g + case when e.job_name = 'daily_late' then 3 else 0 end))
              from scheduler.schedules s where s.job_name = e.job_name) t(tick);
-- ad-hoc runs of a task (no tick), one still running, and missed ticks
insert into scheduler.job_runs (job_name, task, started_at, finished_at, status)
select 'stats_task', 'stats_task', now() - make_interval(hours => g), case when g > 1 then now() - make_interval(hours => g) end,
       case when g = 1 then 'running' when g % 4 = 0 then 'failed' else 'success' end
from generate_series(1, 12) g;
insert into scheduler.job_runs (job_name, task, attempt, scheduled_for, started_at, finished_at, status)
select 'daily_late', 'other_task', 0, now() - make_interval(days => 60 + g), now() - make_interval(days => 60 + g), now() - make_interval(days => 60 + g), 'missed'
from generate_series(1, 3) g;`;

describe("job_stats: lifetime totals and last runs kept by job_runs' triggers", () => {
  it("seeds the totals of existing history (and of runs pruned before) so that scheduled_jobs reads as before", async (t) => {
    const db = await createTestDatabase({ migrate: false });
    t.after(() => db.drop());
    await migrateEngineBefore(db.pool, 25, testLogger);
    // The crontab as 024's sync wrote it (publishSchedules now also refreshes 025's memo).
    const entries = parseCrontabOrThrow(await crontabAwayFromNow(db), "test crontab");
    for (const entry of entries) {
      await db.pool.query(
        `insert into scheduler.schedules (job_name, task, schedule, minutes, hours, dates, months, dows, timezone, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() - interval '90 days')`,
        [entry.identifier, entry.task, entry.schedule, entry.fields.minutes, entry.fields.hours, entry.fields.dates, entry.fields.months, entry.fields.dows, entry.timezone],
      );
    }
    await db.pool.query(HISTORY);
    await db.pool.query("select scheduler.pause_job('paused_one', 'test')");
    // Runs pruned under 024: folded into job_stats' pruned_* counts.
    await db.pool.query("insert into scheduler.job_stats (job_name, pruned_runs, pruned_successes, pruned_failures, pruned_skipped, pruned_missed) values ('daily_utc', 100, 90, 10, 4, 2), ('gone_entry', 7, 7, 0, 0, 0)");
    const expected = (await db.pool.query(before025)).rows;
    assert.ok(expected.some((row) => row.late === true) && expected.some((row) => row.late === false), "late and punctual entries");

    await migratePlan(db.pool, testLogger, schemaPlanOf([]));
    assert.deepEqual((await db.pool.query(now025)).rows, expected);
    const { rows: [gone] } = await db.pool.query("select runs, attempts, successes from scheduler.job_stats where job_name = 'gone_entry'");
    assert.deepEqual(gone, { runs: "7", attempts: "7", successes: "7" }, "a job with only pruned runs keeps its totals (each pruned attempt counted a run)");
    // Runs: the first attempts the history holds, plus the pruned attempts (not known apart).
    const { rows: runs } = await db.pool.query(`
      select s.job_name, v.run_count, count(r.id) filter (where r.status not in ('skipped', 'missed') and r.attempt <= 1) + case when s.job_name = 'daily_utc' then 100 else 0 end as first_attempts
      from scheduler.schedules s join scheduled_jobs v using (job_name) left join scheduler.job_runs r on r.job_name = s.job_name
      group by s.job_name, v.run_count order by 1`);
    for (const row of runs) assert.equal(row.run_count, row.first_attempts, row.job_name);
    assert.ok(runs.some((row) => Number(row.run_count) > 0 && Number(row.run_count) < Number(expected.find((e) => e.job_name === row.job_name).run_count)), "retries are not runs");
  });

  it("keeps them exact as runs are recorded, finish, are abandoned in bulk and pruned, and keeps lifetime counts after pruning", async (t) => {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    await publishSchedules(db.pool, parseCrontabOrThrow(await crontabAwayFromNow(db), "test crontab"), "test");
    await db.pool.query(HISTORY);
    await db.pool.query("select scheduler.pause_job('paused_one', 'test')");
    const start = (jobName: string, scheduledFor: Date | null): RunRecord => ({ id: null, startedAt: null, jobId: null, jobName, task: "stats_task", attempt: 1, nodeId: "n1", scheduledFor, dryRun: false, payload: {} });
    const { rows: [{ tick }] } = await db.pool.query("select scheduler.schedule_next(s, now() - interval '1 day') as tick from scheduler.schedules s where job_name = 'daily_utc'");
    const done = { itemsProcessed: 1, itemsFailed: 0, message: "x" };
    const newId = async () => (await db.pool.query("select nextval('scheduler.job_runs_id_seq')::text as id")).rows[0].id as string;
    // A tick's run recorded once; a run shown as running, then its outcome (a second outcome changes nothing).
    await recordOutcome(db.pool, start("daily_utc", tick as Date), { status: "success", result: done });
    const long = { ...start("daily_berlin", null), id: await newId() };
    await recordRunning(db.pool, long);
    await recordOutcome(db.pool, long, { status: "failed", error: "late failure" });
    await recordOutcome(db.pool, long, { status: "success", result: done });
    // Three jobs' running runs abandoned in one statement (a rescue); an outcome arriving after it changes nothing.
    const orphans: RunRecord[] = [];
    for (const job of ["daily_utc", "stats_task", "daily_berlin"]) {
      const run = { ...start(job, null), id: await newId() };
      await recordRunning(db.pool, run);
      orphans.push(run);
    }
    await db.pool.query("select scheduler.abandon_runs($1::bigint[], 'node died')", [orphans.map((run) => run.id)]);
    await recordOutcome(db.pool, orphans[0]!, { status: "success", result: done });
    await recordOutcome(db.pool, start("daily_utc", null), { status: "skipped", result: { itemsProcessed: 0, itemsFailed: 0, message: "overlap" } });

    const recount = `
      select job_name, count(*) filter (where status not in ('skipped', 'missed') and attempt <= 1) as runs,
             count(*) filter (where status not in ('skipped', 'missed')) as attempts, count(*) filter (where status = 'success') as successes,
             count(*) filter (where status in ('failed', 'abandoned')) as failures, count(*) filter (where status = 'skipped') as skipped,
             count(*) filter (where status = 'missed') as missed, max(finished_at) filter (where status = 'success') as last_success_at,
             max(scheduled_for) as last_tick
      from scheduler.job_runs group by job_name order by job_name`;
    const totals = "select job_name, runs, attempts, successes, failures, skipped, missed, last_success_at, last_tick from scheduler.job_stats where attempts + skipped + missed > 0 order by job_name";
    assert.deepEqual((await db.pool.query(totals)).rows, (await db.pool.query(recount)).rows);
    assert.deepEqual((await db.pool.query(now025)).rows, (await db.pool.query(before025)).rows, "scheduled_jobs as the whole history says");

    // Pruning removes rows, not runs: every total stays; scheduled_jobs keeps its lifetime counts.
    const countsBefore = (await db.pool.query("select job_name, run_count, success_count, failure_count, skipped_count, missed_count from scheduled_jobs order by job_name")).rows;
    assert.ok((await pruneRuns(db.pool, 30, 50)) > 0);
    assert.deepEqual((await db.pool.query("select job_name, run_count, success_count, failure_count, skipped_count, missed_count from scheduled_jobs order by job_name")).rows, countsBefore);
  });

  it("remembers each entry's next tick, and what it shows follows a handled tick, a crontab change and a resume", async (t) => {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    const crontab = await crontabAwayFromNow(db);
    await publishSchedules(db.pool, parseCrontabOrThrow(crontab, "test crontab"), "test");
    // As if published long ago: ticks since then count (daily_late's history stops 3 days early).
    await db.pool.query("update scheduler.schedules set updated_at = now() - interval '90 days'");
    await db.pool.query(HISTORY);
    const calendar = `
      select s.job_name, case when not exists (select 1 from scheduler.paused_jobs pj where pj.job_name in (s.job_name, s.task)) then scheduler.schedule_next(s, now()) end as next_run,
             not exists (select 1 from scheduler.paused_jobs pj where pj.job_name in (s.job_name, s.task)) and scheduler.overdue_tick(s, now()) is not null as late
      from scheduler.schedules s order by s.job_name`;
    const shown = "select job_name, next_run, late from scheduled_jobs order by job_name";
    const remembered = "select count(*)::int as n from scheduler.job_stats st join scheduler.schedules s using (job_name) where st.due_since is not null";
    // Every memo is for the `since` of the publish: what is shown comes from the calendar until they are refreshed.
    assert.deepEqual((await db.pool.query(shown)).rows, (await db.pool.query(calendar)).rows);
    await db.pool.query("select scheduler.refresh_due_ticks(null)");
    assert.deepEqual((await db.pool.query(shown)).rows, (await db.pool.query(calendar)).rows);
    assert.equal((await db.pool.query(remembered)).rows[0].n, 5, "every entry's next tick remembered");

    // The late entry's overdue tick handled: it is on time again.
    const { rows: [{ due }] } = await db.pool.query("select late_since as due from scheduled_jobs where job_name = 'daily_late'");
    assert.ok(due, "daily_late is late");
    await recordOutcome(db.pool, { id: null, startedAt: null, jobId: null, jobName: "daily_late", task: "other_task", attempt: 1, nodeId: "n1", scheduledFor: due as Date, dryRun: false, payload: {} }, { status: "success", result: { itemsProcessed: 0, itemsFailed: 0, message: "" } });
    assert.deepEqual((await db.pool.query(shown)).rows, (await db.pool.query(calendar)).rows);

    // A changed entry, a pause and a resume.
    await publishSchedules(db.pool, parseCrontabOrThrow(crontab.replace("?id=daily_utc", "?id=daily_utc&tz=America/New_York"), "test crontab"), "test");
    await db.pool.query("select scheduler.pause_job('stats_task', 'test')");
    assert.deepEqual((await db.pool.query(shown)).rows, (await db.pool.query(calendar)).rows);
    await db.pool.query("select scheduler.resume_job('stats_task')");
    assert.deepEqual((await db.pool.query(shown)).rows, (await db.pool.query(calendar)).rows);
    const { rows: [stale] } = await db.pool.query(`
      select count(*)::int as n from scheduler.schedules s join scheduler.job_stats st using (job_name)
      where st.due_since is distinct from greatest(st.last_tick, scheduler.ticks_count_since(s))`);
    assert.equal(stale.n, 0, "no remembered tick is stale after a run, a change or a resume");
  });

  it("serves the dashboard's last 30 runs from its cache exactly as the history has them, after new runs, outcomes and pruning", async (t) => {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    await publishSchedules(db.pool, parseCrontabOrThrow(await crontabAwayFromNow(db), "test crontab"), "test");
    await db.pool.query(HISTORY);
    const api = apiRoutes({ db: db.pool, deadAfterMs: 30_000, canDryRun: () => false });
    const served = async () => {
      const answer = await api.schedules!({ query: new URLSearchParams() });
      assert.ok(answer instanceof JsonText);
      return new Map((JSON.parse(answer.text) as { job_name: string; recent_runs: unknown[] }[]).map((row) => [row.job_name, row.recent_runs]));
    };
    const history = async () => {
      const { rows } = await db.pool.query(`
        select s.job_name, coalesce((select json_agg(json_build_object('id', r.id, 'status', r.status, 'started_at', r.started_at, 'duration_ms', r.duration_ms) order by r.started_at, r.id)
                                     from (select * from scheduler.job_runs where job_name = s.job_name order by started_at desc, id desc limit 30) r), '[]') as runs
        from scheduler.schedules s`);
      return new Map(rows.map((row) => [row.job_name as string, row.runs as unknown[]]));
    };
    assert.deepEqual(await served(), await history());
    assert.equal((await db.pool.query("select count(*)::int as n from scheduler.recent_runs_cache")).rows[0].n, 5, "kept for every schedule");
    assert.deepEqual(await served(), await history(), "read from the cache");
    const run = { id: null, startedAt: null, jobId: null, jobName: "daily_utc", task: "stats_task", attempt: 1, nodeId: "n1", scheduledFor: null, dryRun: false, payload: {} };
    const id = (await db.pool.query("select nextval('scheduler.job_runs_id_seq')::text as id")).rows[0].id as string;
    await recordRunning(db.pool, { ...run, id });
    assert.deepEqual(await served(), await history(), "a run in progress");
    await recordOutcome(db.pool, { ...run, id }, { status: "failed", error: "x" });
    assert.deepEqual(await served(), await history(), "its outcome");
    await db.pool.query("delete from scheduler.job_runs where job_name = 'daily_berlin' and started_at > now() - interval '3 days'");
    assert.deepEqual(await served(), await history(), "rows deleted");
    assert.ok((await pruneRuns(db.pool, 5)) > 0);
    assert.deepEqual(await served(), await history(), "pruned");
  });
});
