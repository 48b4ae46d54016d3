import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { z } from "zod";
import { defineJob } from "../../../src/engine/jobs/define.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { startScheduler } from "../../../src/scheduler.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

// A run of an exclusive job that arrives while another run holds the job's lock (here: bare
// add_job() calls without the task's queue) waits in the queue, not in a worker: it holds no
// worker and no connection, uses no attempt, and runs once the holder is done, one at a time.

const db = useTestDatabase();

const exclusiveSleep = defineJob({
  name: "exclusive_sleep",
  description: "sleeps `ms` in the database, one run at a time",
  payload: { ms: z.number().int().min(0), tag: z.string() },
  timeoutMs: 60_000,
  async run({ db: conn, payload }) {
    await conn.query("select pg_sleep($1::float8 / 1000)", [payload.ms]);
    return { itemsProcessed: 1, itemsFailed: 0, message: payload.tag };
  },
});

const quick = defineJob({
  name: "quick",
  description: "returns at once",
  payload: { tag: z.string() },
  exclusive: false,
  async run({ payload }) {
    return { itemsProcessed: 1, itemsFailed: 0, message: payload.tag };
  },
});

let node: SchedulerHandle | undefined;

describe("runs waiting for an exclusive job's lock", () => {
  after(async () => {
    await node?.stop();
  });

  it("hold no worker, use no attempt, and each run once, in turn, when the holder is done", async () => {
    node = await startScheduler({
      connectionString: db.connectionString,
      taskDirectory: null,
      jobs: [exclusiveSleep, quick],
      crontab: "",
      bootstrapJobs: [],
      services: false,
      concurrency: 4,
      logger: testLogger,
    });
    const add = (task: string, payload: object) => db.pool.query("select graphile_worker.add_job($1, $2::json)", [task, JSON.stringify(payload)]);

    await add("exclusive_sleep", { ms: 4000, tag: "holder" });
    await eventually(async () => (await db.pool.query("select 1 from scheduler.job_runs where status = 'running'")).rows.length > 0, { what: "the holder to start" });
    for (let i = 0; i < 10; i++) await add("exclusive_sleep", { ms: 100, tag: `waiter-${i}` });

    // With 10 waiters at concurrency 4, other tasks still get workers at once.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const queuedAt = Date.now();
    for (let i = 0; i < 4; i++) await add("quick", { tag: `quick-${i}` });
    await eventually(async () => (await db.pool.query("select count(*)::int as n from scheduler.job_runs where task = 'quick' and status = 'success'")).rows[0].n === 4, {
      timeoutMs: 10_000,
      what: "the quick jobs",
    });
    const { rows: quickRuns } = await db.pool.query("select min(started_at) as first, max(started_at) as last from scheduler.job_runs where task = 'quick'");
    assert.ok((quickRuns[0].last as Date).getTime() - queuedAt < 2000, `other tasks started within 2 s (last after ${(quickRuns[0].last as Date).getTime() - queuedAt} ms)`);

    // While the holder runs, the waiters are back in the queue, not in workers.
    const { rows: locked } = await db.pool.query("select count(*)::int as n from graphile_worker.jobs where task_identifier = 'exclusive_sleep' and locked_at is not null");
    assert.ok(locked[0].n <= 1 + 1, `at most the holder (and one waiter being put back) hold a worker; saw ${locked[0].n}`);

    await eventually(async () => (await db.pool.query("select count(*)::int as n from scheduler.job_runs where task = 'exclusive_sleep' and status = 'success'")).rows[0].n === 11, {
      timeoutMs: 60_000,
      intervalMs: 250,
      what: "all 11 runs",
    });
    const { rows: runs } = await db.pool.query("select message, attempt, status, started_at, finished_at from scheduler.job_runs where task = 'exclusive_sleep' order by started_at");
    assert.equal(runs.length, 11, "one history row per run: waiting left none");
    assert.deepEqual(runs.map((run) => run.message).sort(), ["holder", ...Array.from({ length: 10 }, (_, i) => `waiter-${i}`)].sort(), "each run exactly once");
    assert.ok(runs.every((run) => run.attempt === 1 && run.status === "success"), "no attempt used by waiting, none failed");
    for (let i = 1; i < runs.length; i++) {
      assert.ok(runs[i].started_at >= runs[i - 1].finished_at, `run ${runs[i].message} started after ${runs[i - 1].message} finished: never overlapping`);
    }
    const { rows: left } = await db.pool.query("select (select count(*)::int from graphile_worker.jobs) as jobs, (select count(*)::int from scheduler.lock_waiters) as waiters");
    assert.deepEqual(left[0], { jobs: 0, waiters: 0 });
  });
});
