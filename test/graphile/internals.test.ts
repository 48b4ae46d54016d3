import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { after, describe, it } from "node:test";
import { parseCrontab, run, type ParsedCronItem, type Runner, type TaskList, type WorkerEvents, type WorkerPool } from "graphile-worker";
import pg from "pg";
import { addLiveTask, cronFieldsOf, IDEMPOTENT_STATEMENT, JOBS_INSERT_CHANNEL, makeAttemptFinal, replaceLiveCronItems } from "../../src/graphile/internals.ts";
import { graphileLoggerFor } from "../../src/log.ts";
import { testLogger, useTestDatabase } from "../helpers/db.ts";
import { eventually } from "../helpers/wait.ts";

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
    // A job made due by an UPDATE (as wake_lock_waiters does) is not announced by add_job's trigger.
    const { rows } = await db.pool.query("select id from graphile_worker.add_job('contract_wake', '{}', run_at => now() + interval '1 hour')");
    await db.pool.query("update graphile_worker._private_jobs set run_at = now() where id = $1", [rows[0].id]);
    await db.pool.query("select pg_notify($1, '{\"count\": 1}')", [JOBS_INSERT_CHANNEL]);
    // pollInterval is 200 ms here too, so look at the listener instead: it must exist.
    const listeners = await db.pool.query("select count(*)::int as n from pg_stat_activity where datname = current_database() and query ilike $1", [`%LISTEN "${JOBS_INSERT_CHANNEL}"%`]);
    assert.ok(listeners.rows[0].n >= 1, `a connection LISTENs on "${JOBS_INSERT_CHANNEL}"`);
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
