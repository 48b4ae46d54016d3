import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { after, describe, it } from "node:test";
import { parseCrontab, run, type ParsedCronItem, type Runner, type TaskList, type WorkerEvents, type WorkerPool } from "graphile-worker";
import pg from "pg";
import { DatabaseHealth } from "../../../src/engine/cluster/health.ts";
import { makePoolPatient } from "../../../src/engine/cluster/patient-pool.ts";
import { addLiveTask, cronFieldsOf, cronMatcherByInstant, delayCronJobs, finishedJobs, IDEMPOTENT_STATEMENT, instantOfDigest, jobsHeldBy, JOBS_INSERT_CHANNEL, latestGraphileMigration, type HeldQueue, makeAttemptFinal, replaceLiveCronItems } from "../../../src/engine/graphile/internals.ts";
import { graphileLoggerFor } from "../../../src/engine/log.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

// Contract tests: one per reliance on graphile-worker internals (src/graphile/internals.ts).
// Each fails loudly if an upgrade of graphile-worker changes what we rely on.

const db = useTestDatabase();
const runners: Runner[] = [];

async function startRunner(taskList: TaskList, options: { pool?: pg.Pool; cron?: ParsedCronItem[]; events?: WorkerEvents } = {}): Promise<Runner> {
  const runner = await run(
    {
      pgPool: options.pool ?? db.pool,
      noHandleSignals: true,
      logger: graphileLoggerFor(testLogger),
      events: options.events,
      preset: { worker: { concurrentJobs: 2, completeJobBatchDelay: 0, failJobBatchDelay: 0, pollInterval: 200 } },
    },
    taskList,
    options.cron ?? [],
  );
  runners.push(runner);
  return runner;
}

const jobsLeft = async (task: string) => (await db.pool.query("select count(*)::int as n from graphile_worker.jobs where task_identifier = $1", [task])).rows[0].n as number;

describe("graphile-worker internals we rely on", () => {
  after(async () => {
    await Promise.all(runners.map((runner) => runner.stop().catch(() => {})));
  });

  it("prepared statement names: complete and fail statements are the ones the patient pool re-sends; get_job is not", async () => {
    const names = new Set<string>();
    const pool = new pg.Pool({ connectionString: db.connectionString, max: 4 });
    pool.on("error", () => {});
    pool.on("connect", (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        const name = (args[0] as { name?: unknown } | null)?.name;
        if (typeof name === "string") names.add(name);
        return query(...args);
      };
    });
    await db.pool.query("select graphile_worker.add_job('contract_ok', '{}'), graphile_worker.add_job('contract_ok', '{}', queue_name => 'contract_q')");
    await db.pool.query("select graphile_worker.add_job('contract_fail', '{}', max_attempts => 1), graphile_worker.add_job('contract_fail', '{}', queue_name => 'contract_q', max_attempts => 1)");
    const runner = await startRunner({ contract_ok: async () => {}, contract_fail: async () => { throw new Error("on purpose"); } }, { pool });
    await eventually(async () => (await jobsLeft("contract_ok")) === 0 && (await db.pool.query("select count(*)::int as n from graphile_worker.jobs where task_identifier = 'contract_fail' and locked_at is null and attempts = 1")).rows[0].n === 2, { what: "the jobs to complete and fail" });
    await runner.stop();
    await pool.end();
    const seen = [...names].map((name) => name.split("/")[0]);
    for (const expected of ["complete_job", "complete_job_q", "fail_job", "fail_job_q"]) {
      assert.ok(seen.includes(expected), `graphile-worker prepared '${expected}/…' (seen: ${seen.join(", ")})`);
      assert.ok(IDEMPOTENT_STATEMENT.test(`${expected}/graphile_worker`));
    }
    for (const name of names) {
      if (/^get_job/.test(name)) assert.ok(!IDEMPOTENT_STATEMENT.test(name), `${name} must never be re-sent`);
    }
  });

  it(`workers listen on '${JOBS_INSERT_CHANNEL}': a notification there wakes an idle worker`, async () => {
    let ran = 0;
    await startRunner({ contract_wake: async () => void ran++ }, {});
    // pollInterval is 200 ms here too, so look at the listener instead: it must exist. run()
    // returns before the worker pool's listening connection has sent its LISTEN: wait for it.
    await eventually(async () => {
      const listeners = await db.pool.query("select count(*)::int as n from pg_stat_activity where datname = current_database() and query ilike $1", [`%LISTEN "${JOBS_INSERT_CHANNEL}"%`]);
      return listeners.rows[0].n >= 1;
    }, { what: `a connection to LISTEN on "${JOBS_INSERT_CHANNEL}"` });
    // A job made due by an UPDATE (as wake_lock_waiters does) is not announced by add_job's trigger.
    const { rows } = await db.pool.query("select id from graphile_worker.add_job('contract_wake', '{}', run_at => now() + interval '1 hour')");
    await db.pool.query("update graphile_worker._private_jobs set run_at = now() where id = $1", [rows[0].id]);
    await db.pool.query("select pg_notify($1, '{\"count\": 1}')", [JOBS_INSERT_CHANNEL]);
    await eventually(async () => ran === 1, { what: "the woken job to run" });
  });

  it("graphile_worker.jobs.locked_by holds the worker pool's id", async () => {
    const events = new EventEmitter() as WorkerEvents;
    let workerPool: WorkerPool | undefined;
    events.on("pool:create", ({ workerPool: created }) => (workerPool = created));
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    await startRunner({ contract_hold: () => held }, { events });
    await db.pool.query("select graphile_worker.add_job('contract_hold', '{}')");
    const lockedBy = await eventually(async () => (await db.pool.query("select locked_by from graphile_worker.jobs where task_identifier = 'contract_hold' and locked_by is not null")).rows[0]?.locked_by as string | undefined, { what: "the job to be locked" });
    release();
    assert.ok(workerPool);
    assert.equal(lockedBy, workerPool.id);
  });

  it("a parsed crontab line carries graphile-worker's expansion of its five fields", () => {
    const [item] = parseCrontab("*/20 3,15 1-3 */6 0 contract_task");
    assert.deepEqual(cronFieldsOf(item!), { minutes: [0, 20, 40], hours: [3, 15], dates: [1, 2, 3], months: [1, 7], dows: [0] });
  });

  it("tasks added to the task list object after run() are run", async () => {
    const taskList: TaskList = { contract_first: async () => {} };
    await startRunner(taskList);
    let ran = false;
    addLiveTask(taskList, "contract_added", async () => void (ran = true));
    await db.pool.query("select graphile_worker.add_job('contract_added', '{}')");
    await eventually(async () => ran, { what: "the task added live to run" });
  });

  it("makeAttemptFinal: the running attempt becomes the last one", async () => {
    let attempts = 0;
    await startRunner({
      contract_final: async (_payload, helpers) => {
        attempts++;
        await makeAttemptFinal(helpers);
        throw new Error("cannot succeed");
      },
    });
    await db.pool.query("select graphile_worker.add_job('contract_final', '{}', max_attempts => 25)");
    const row = await eventually(async () => (await db.pool.query("select attempts, max_attempts from graphile_worker.jobs where task_identifier = 'contract_final' and locked_at is null and attempts > 0")).rows[0], { what: "the failed job" });
    assert.deepEqual(row, { attempts: 1, max_attempts: 1 });
    assert.equal(attempts, 1);
  });

  it("jobsHeldBy: the jobs a worker pool's workers run (_workers, getActiveJob) and those its local queue holds (localQueue:init, jobQueue)", async () => {
    const events = new EventEmitter() as WorkerEvents;
    let workerPool: WorkerPool | null = null;
    let localQueue: HeldQueue | null = null;
    events.on("pool:create", ({ workerPool: created }) => (workerPool = created));
    events.on("localQueue:init", ({ localQueue: created }) => (localQueue = created));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let started = 0;
    const { rows } = await db.pool.query<{ id: string }>("select (graphile_worker.add_job('contract_held', '{}')).id from generate_series(1, 3)");
    const runner = await run(
      {
        pgPool: db.pool,
        noHandleSignals: true,
        logger: graphileLoggerFor(testLogger),
        events,
        preset: { worker: { concurrentJobs: 1, localQueue: { size: 5 }, completeJobBatchDelay: 0, failJobBatchDelay: 0, pollInterval: 200 } },
      },
      { contract_held: async () => { started++; await released; } },
      [],
    );
    runners.push(runner);
    await eventually(async () => started === 1, { what: "the first job to start" });
    assert.deepEqual(jobsHeldBy(workerPool, localQueue).sort(), rows.map((row) => row.id).sort(), "one run by a worker, two waiting in the local queue");
    const running = jobsHeldBy(workerPool, null);
    assert.equal(running.length, 1, "without the local queue: only the running one");
    assert.ok(rows.some((row) => row.id === running[0]));
    release();
    await eventually(async () => (await jobsLeft("contract_held")) === 0, { what: "the held jobs to complete" });
    assert.deepEqual(jobsHeldBy(workerPool, localQueue), []);
    await runner.stop();
  });

  it("defer_locked_job gives the attempt back and pushes run_at; wake_lock_waiters makes it due and notifies", async () => {
    const { rows } = await db.pool.query("select id from graphile_worker.add_job('contract_unrun', '{}')");
    const id = rows[0].id as string;
    await db.pool.query("update graphile_worker._private_jobs set attempts = 1 where id = $1", [id]);
    await db.pool.query("insert into scheduler.lock_waiters (lock_key, job_id) values ('contract-lock', $1)", [id]);
    await db.pool.query("select scheduler.defer_locked_job($1, 'contract-lock')", [id]);
    const deferred = (await db.pool.query("select attempts, run_at > now() as later from graphile_worker.jobs where id = $1", [id])).rows[0];
    assert.deepEqual(deferred, { attempts: 0, later: true });

    const listener = new pg.Client({ connectionString: db.connectionString });
    await listener.connect();
    const notified = new Promise<string>((resolve) => listener.on("notification", (message) => resolve(message.channel)));
    await listener.query(`listen "${JOBS_INSERT_CHANNEL}"`);
    const woken = (await db.pool.query("select scheduler.wake_lock_waiters('contract-lock') as n")).rows[0].n;
    assert.equal(woken, 1);
    assert.equal(await notified, JOBS_INSERT_CHANNEL);
    await listener.end();
    const due = (await db.pool.query("select run_at <= now() as due from graphile_worker.jobs where id = $1", [id])).rows[0];
    assert.equal(due.due, true);
    assert.equal((await db.pool.query("select count(*)::int as n from scheduler.lock_waiters")).rows[0].n, 0);
  });

  it("its package ships its migrations as sql/NNNNNN.sql: the latest is the one its migrate applies last", async () => {
    const latest = latestGraphileMigration();
    assert.ok(latest !== null && latest >= 19, `found ${latest}`);
    const { rows } = await db.pool.query("select max(id)::int as id from graphile_worker.migrations");
    assert.equal(rows[0].id, latest);
  });

  it("its tables have row level security on and no policy of their own (a runtime role needs the one sql/grants/engine.sql adds)", async () => {
    const { rows } = await db.pool.query(
      `select c.relname, c.relrowsecurity, (select count(*)::int from pg_policy p where p.polrelid = c.oid) as policies
       from pg_class c where c.relnamespace = 'graphile_worker'::regnamespace and c.relkind = 'r' and starts_with(c.relname, '_private_') order by 1`,
    );
    assert.deepEqual(rows.map((row) => [row.relname, row.relrowsecurity, row.policies]), [
      ["_private_job_queues", true, 0],
      ["_private_jobs", true, 0],
      ["_private_known_crontabs", true, 0],
      ["_private_tasks", true, 0],
    ]);
  });

  it("finish_run completes a job inside its task (row deleted, queue unlocked): graphile-worker's own completion is then a no-op, and the queue's next job runs", async () => {
    const ran: string[] = [];
    const finished: string[] = [];
    await startRunner({
      contract_finish: async (payload, helpers) => {
        ran.push((payload as { n: string }).n);
        await helpers.query("select scheduler.finish_run(null, $1, $2)", [helpers.job.id, helpers.job.locked_by]);
        const left = await helpers.query("select count(*)::int as n from graphile_worker._private_jobs where id = $1", [helpers.job.id]);
        if (left.rows[0]?.n === 0) finished.push((payload as { n: string }).n);
      },
    });
    await db.pool.query("select graphile_worker.add_job('contract_finish', json_build_object('n', n::text), queue_name => 'contract_finish_q') from generate_series(1, 3) n");
    await eventually(async () => (await jobsLeft("contract_finish")) === 0 && ran.length === 3, { what: "the three jobs of the queue to run" });
    assert.deepEqual(ran.sort(), ["1", "2", "3"]);
    assert.deepEqual(finished.sort(), ["1", "2", "3"]);
    const queue = (await db.pool.query("select locked_by, locked_at from graphile_worker._private_job_queues where queue_name = 'contract_finish_q'")).rows[0];
    assert.deepEqual(queue ?? { locked_by: null, locked_at: null }, { locked_by: null, locked_at: null });
    // A job the pool no longer holds (released by a rescuer) is left alone.
    const { rows } = await db.pool.query("select id from graphile_worker.add_job('contract_unheld', '{}', queue_name => 'contract_unheld_q')");
    await db.pool.query("select scheduler.finish_run(null, $1, 'some-other-pool')", [rows[0].id]);
    assert.equal(await jobsLeft("contract_unheld"), 1);
  });

  it("completion statements (complete_job_q, complete_job, complete_jobs) name their job ids first: the node's pool answers those finish_run completed, and nothing is left behind", async () => {
    const pool = new pg.Pool({ connectionString: db.connectionString, max: 6 });
    const health = new DatabaseHealth({ connectionTarget: "test", logger: testLogger, giveUpMs: 60_000, startedHealthySince: Date.now(), onGiveUp: () => {} });
    const finished = finishedJobs();
    makePoolPatient(pool, health, { finished });
    const completedHere: string[] = [];
    const task = async (_payload: unknown, helpers: { job: { id: string; locked_by: string | null }; query: (text: string, values: unknown[]) => Promise<pg.QueryResult> }) => {
      const { rows } = await helpers.query("select completed from scheduler.finish_run_reporting(null, $1, $2)", [helpers.job.id, helpers.job.locked_by]);
      if (rows[0]?.completed) {
        finished.add(helpers.job.id);
        completedHere.push(helpers.job.id);
      }
    };
    const runner = await startRunner({ contract_skip: task as never }, { pool });
    // With a queue (complete_job_q) and without one (complete_job, or complete_jobs when batched).
    await db.pool.query("select graphile_worker.add_job('contract_skip', '{}', queue_name => 'contract_skip_q') from generate_series(1, 5)");
    await db.pool.query("select graphile_worker.add_job('contract_skip', '{}') from generate_series(1, 5)");
    await eventually(async () => (await jobsLeft("contract_skip")) === 0 && completedHere.length === 10, { what: "the ten jobs to run" });
    await eventually(async () => finished.size === 0, { what: "graphile-worker's completions of the ten jobs to be recognised" });
    const queue = (await db.pool.query("select locked_by from graphile_worker._private_job_queues where queue_name = 'contract_skip_q'")).rows[0];
    assert.equal(queue?.locked_by ?? null, null, "the queue is free");
    await runner.stop();
    runners.splice(runners.indexOf(runner), 1);
    await pool.end();

    // A statement naming a job finish_run did not complete is sent; its other ids are forgotten all the same.
    const set = finishedJobs();
    set.add("1");
    set.add("2");
    assert.equal(set.covers({ name: "complete_job_q/graphile_worker", values: [["1", "3"], "pool"] }), false);
    assert.equal(set.size, 1);
    assert.equal(set.covers({ name: "complete_job/graphile_worker", values: ["2"] }), true);
    assert.equal(set.covers({ name: "fail_job/graphile_worker", values: ["2"] }), false);
    assert.equal(set.size, 0);
  });

  it("backfill asks an item's match about every UTC minute of its fill period, by a digest without a year; cron:backfill's job objects are the ones written (runAt and payload)", async () => {
    // known_crontabs says the item last ran 5 minutes ago: backfill walks the minutes since.
    const { rows } = await db.pool.query("select date_trunc('minute', now()) - interval '5 minutes' as last");
    const last = rows[0].last as Date;
    await db.pool.query("insert into graphile_worker._private_known_crontabs (identifier, known_since, last_execution) values ('contract_zoned', now() - interval '1 hour', $1)", [last]);
    const asked: number[] = [];
    const [item] = parseCrontab("* * * * * contract_zoned ?fill=10m");
    // Fires on odd UTC minutes only, decided from the instant the digest stands for.
    const match = cronMatcherByInstant((instant) => {
      asked.push(instant);
      return new Date(instant).getUTCMinutes() % 2 === 1;
    }, cronFieldsOf(item!));
    const events = new EventEmitter() as WorkerEvents;
    const hook = delayCronJobs(events, () => 90 * 60_000, () => {});
    await startRunner({}, { cron: [{ ...item!, match }], events });
    // Every matching minute after `last` up to the first tick surely after the start: a minute
    // that turned while the runner started is queued too (by the backfill or live), once.
    const firstLiveTick = Math.floor(Date.now() / 60_000) * 60_000 + 60_000;
    const expected: number[] = [];
    for (let ts = last.getTime() + 60_000; ts < firstLiveTick; ts += 60_000) if (new Date(ts).getUTCMinutes() % 2 === 1) expected.push(ts);
    const jobs = await eventually(async () => {
      const { rows: found } = await db.pool.query(
        "select run_at, payload from graphile_worker._private_jobs where task_id = (select id from graphile_worker._private_tasks where identifier = 'contract_zoned') and (payload->'_cron'->>'ts')::timestamptz < $1 order by run_at",
        [new Date(firstLiveTick)],
      );
      return found.length >= expected.length && found;
    }, { what: "the backfilled jobs" });
    hook.stop();
    for (const ts of expected) assert.ok(asked.includes(ts), `asked about ${new Date(ts).toISOString()}`);
    assert.deepEqual(jobs.map((job) => Date.parse(job.payload._cron.ts)), expected, "one job per matching minute, _cron.ts the tick");
    for (const job of jobs) {
      assert.equal(job.run_at.getTime(), Date.parse(job.payload._cron.ts) + 90 * 60_000, "due at the runAt set on the emitted job");
      assert.equal(job.payload._jitter_ms, 90 * 60_000);
    }
  });

  it("instantOfDigest: the digest's minute in the year that puts it nearest now (and on its day of week)", () => {
    const now = Date.UTC(2026, 0, 1, 0, 5);
    assert.equal(instantOfDigest({ min: 58, hour: 23, date: 31, month: 12, dow: 3 }, now), Date.UTC(2025, 11, 31, 23, 58), "just before new year: last year");
    assert.equal(instantOfDigest({ min: 6, hour: 0, date: 1, month: 1, dow: 4 }, now), Date.UTC(2026, 0, 1, 0, 6));
    assert.equal(instantOfDigest({ min: 0, hour: 0, date: 29, month: 2, dow: 0 }, now), null, "no 29 February in 2025-2027");
  });

  it("the cron loop reads the live array it was given on every tick (changes apply from the next minute)", async () => {
    const live: ParsedCronItem[] = [];
    const every = parseCrontab("* * * * * contract_tick");
    await startRunner({ contract_tick: async () => {} }, { cron: live });
    // Swapped in after start: only a loop that re-reads the array can fire it.
    replaceLiveCronItems(live, every);
    await eventually(async () => (await db.pool.query("select count(*)::int as n from graphile_worker._private_known_crontabs where identifier = 'contract_tick' and last_execution is not null")).rows[0].n > 0, {
      timeoutMs: 75_000,
      intervalMs: 500,
      what: "a tick of the item swapped in after start",
    });
  });
});
