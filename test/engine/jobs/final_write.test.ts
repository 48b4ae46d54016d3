// The last statement of a run (its success row, the lock's release, the job's completion in
// one round trip) can fail for reasons other than a broken connection. The run still counts
// as the success it was, runs once, and leaves no lock behind. The failure is made real: a
// trigger on scheduler.job_runs refuses each task's first success row.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { defineJob } from "../../../src/engine/jobs/define.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { startScheduler } from "../../../src/scheduler.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

const db = useTestDatabase();

const exclusive = defineJob({
  name: "exclusive_once",
  description: "counts its runs; one at a time",
  payload: {},
  async run({ db: conn }) {
    await conn.query("insert into test_effects (task) values ('exclusive_once')");
    return { itemsProcessed: 1, itemsFailed: 0, message: "done" };
  },
});

let node: SchedulerHandle | undefined;

describe("a run whose last statement fails", () => {
  before(async () => {
    await db.pool.query(`
      create table test_effects (id bigserial primary key, task text not null);
      -- sequences, not rows: the refusal rolls back everything else the statement did
      create sequence test_refused_exclusive_once;
      create sequence test_refused_plain_once;
      create function test_refuse_first_success() returns trigger language plpgsql as $$
      begin
        if new.status = 'success' and new.task in ('exclusive_once', 'plain_once') and nextval(format('test_refused_%s', new.task)) = 1 then
          raise exception 'refused: the first success row of %', new.task;
        end if;
        return new;
      end $$;
      create trigger test_refuse_first_success before insert or update on scheduler.job_runs
        for each row execute function test_refuse_first_success();`);
    // A plain graphile-worker task file, as a user writes one.
    const taskDirectory = fs.mkdtempSync(path.join(os.tmpdir(), "sps-final-write-"));
    fs.writeFileSync(path.join(taskDirectory, "plain_once.js"), "export default async (_payload, helpers) => { await helpers.query(\"insert into test_effects (task) values ('plain_once')\"); };\n");
    node = await startScheduler({
      connectionString: db.connectionString,
      taskDirectory,
      jobs: [exclusive],
      crontab: "",
      bootstrapJobs: [],
      services: false,
      concurrency: 2,
      logger: testLogger,
    });
  });
  after(async () => {
    await node?.stop();
  });

  const settled = async (task: string) => {
    await eventually(async () => (await db.pool.query("select 1 from graphile_worker.jobs where task_identifier = $1", [task])).rowCount === 0, { what: `the ${task} job to be done` });
    const effects = await db.pool.query<{ n: number }>("select count(*)::int as n from test_effects where task = $1", [task]);
    const history = await db.pool.query<{ status: string }>("select status from scheduler.job_runs where task = $1 order by id", [task]);
    const refused = await db.pool.query<{ last_value: string }>(`select last_value from test_refused_${task}`);
    assert.ok(Number(refused.rows[0]!.last_value) >= 1, "the trigger refused the first success row");
    return { effects: effects.rows[0]!.n, statuses: history.rows.map((row) => row.status) };
  };

  it("an exclusive defineJob run is recorded success once and its lock is released", async () => {
    await db.pool.query("select graphile_worker.add_job('exclusive_once', '{}'::json)");
    assert.deepEqual(await settled("exclusive_once"), { effects: 1, statuses: ["success"] });
    // No session holds the task's lock: another connection can take it at once.
    const { rows } = await db.pool.query<{ free: boolean }>("select pg_try_advisory_lock(hashtextextended('systemprompt-scheduler:job:exclusive_once', 0)) as free");
    assert.equal(rows[0]!.free, true, "the task's lock was left on a pooled session");
    await db.pool.query("select pg_advisory_unlock_all()");
    // And the next run of the task is not deferred behind a lock nobody will release.
    await db.pool.query("select graphile_worker.add_job('exclusive_once', '{}'::json)");
    assert.deepEqual(await settled("exclusive_once"), { effects: 2, statuses: ["success", "success"] });
  });

  it("a plain task is recorded success once, not re-run as a failure", async () => {
    await db.pool.query("select graphile_worker.add_job('plain_once', '{}'::json)");
    assert.deepEqual(await settled("plain_once"), { effects: 1, statuses: ["success"] });
  });
});
