import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { publishSchedules } from "../../../src/engine/crontab/sync.ts";
import { parseCrontabText } from "../../../src/engine/crontab/parse.ts";
import { pruneRuns } from "../../../src/engine/history/runs.ts";
import { useTestDatabase } from "../../helpers/db.ts";

const db = useTestDatabase();

describe("run history retention", () => {
  it("prunes finished runs past the retention in batches, keeps running ones, and keeps lifetime counts", async () => {
    await publishSchedules(db.pool, parseCrontabText("0 * * * * some_task").entries, "test");
    await db.pool.query(`
      insert into scheduler.job_runs (job_name, task, started_at, finished_at, status, error)
      select 'some_task', 'some_task', now() - interval '40 days' + i * interval '1 minute', now() - interval '40 days',
             case when i % 4 = 0 then 'failed' when i % 7 = 0 then 'abandoned' else 'success' end,
             case when i % 4 = 0 then 'boom' end
      from generate_series(1, 250) i;
      insert into scheduler.job_runs (job_name, task, started_at, status) values ('some_task', 'some_task', now() - interval '45 days', 'running');
      insert into scheduler.job_runs (job_name, task, started_at, finished_at, status, duration_ms)
      values ('some_task', 'some_task', now() - interval '1 day', now() - interval '1 day', 'success', 12);`);
    const before = (await db.pool.query("select run_count, success_count, failure_count from scheduled_jobs")).rows[0];

    const removed = await pruneRuns(db.pool, 30, 100);
    assert.equal(removed, 250);
    const left = await db.pool.query("select status from scheduler.job_runs order by started_at");
    assert.deepEqual(left.rows.map((row) => row.status), ["running", "success"], "a running row is never pruned; recent rows stay");

    const after = (await db.pool.query("select run_count, success_count, failure_count, last_status, last_duration_ms, last_error from scheduled_jobs")).rows[0];
    assert.deepEqual([after.run_count, after.success_count, after.failure_count], [before.run_count, before.success_count, before.failure_count]);
    assert.equal(after.run_count, "252");
    assert.equal(after.last_duration_ms, 12);
    assert.equal(after.last_error, null);
    assert.equal(await pruneRuns(db.pool, 30, 100), 0, "nothing left to prune");
  });
});
