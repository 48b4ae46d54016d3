import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { z } from "zod";
import { applicationNameFor } from "../../../src/engine/cluster/nodes.ts";
import { releaseLostJobs } from "../../../src/engine/cluster/lost-locks.ts";
import { defineJob } from "../../../src/engine/jobs/define.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { startScheduler } from "../../../src/scheduler.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { eventually, sleep } from "../../helpers/wait.ts";

// A job locked by a live node's worker pool that no worker runs (get_job's reply lost with
// its connection, or get_job re-sent after a network error) is released by the node itself,
// once one of its pool's connections failed: scheduler.release_lost_jobs (sql/engine/023),
// src/engine/cluster/lost-locks.ts.

const db = useTestDatabase();
const DEAD_AFTER_MS = 4000;

/** Queues a job and locks it for `workerPool` as get_job does (attempts + 1, its queue too), in one transaction so no worker sees it unlocked. */
async function lockedJob(task: string, payload: object, options: { workerPool: string; lockedAgo: string; queue?: string; attempts?: number }): Promise<string> {
  const client = await db.pool.connect();
  try {
    await client.query("begin");
    const { rows } = await client.query<{ id: string }>("select (graphile_worker.add_job($1, $2::json, queue_name => $3, max_attempts => 5)).id", [task, JSON.stringify(payload), options.queue ?? null]);
    const id = rows[0]!.id;
    await client.query(
      `update graphile_worker._private_jobs
       set attempts = $2, locked_by = $3, locked_at = now() - $4::interval
       where id = $1`,
      [id, options.attempts ?? 1, options.workerPool, options.lockedAgo],
    );
    await client.query(
      `update graphile_worker._private_job_queues q
       set locked_by = $2, locked_at = now() - $3::interval
       from graphile_worker._private_jobs j
       where j.id = $1 and q.id = j.job_queue_id`,
      [id, options.workerPool, options.lockedAgo],
    );
    await client.query("commit");
    return id;
  } catch (error) {
    await client.query("rollback");
    throw error;
  } finally {
    client.release();
  }
}

async function jobState(id: string): Promise<{ locked_by: string | null; attempts: number; queue_locked_by: string | null } | undefined> {
  const { rows } = await db.pool.query(
    `select j.locked_by, j.attempts, q.locked_by as queue_locked_by
     from graphile_worker._private_jobs j left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
     where j.id = $1`,
    [id],
  );
  return rows[0];
}

const historyRow = (jobId: string, attempt: number) =>
  db.pool.query("insert into scheduler.job_runs (job_id, job_name, task, attempt, status) values ($1, 'x', 'x', $2, 'running')", [jobId, attempt]);

describe("scheduler.release_lost_jobs", () => {
  it("releases only old locks of the pool that no worker holds and whose attempt never began; gives the attempt back and frees the queue", async () => {
    const pool = "pool-a";
    const lost = await lockedJob("t", { n: "lost" }, { workerPool: pool, lockedAgo: "1 hour", queue: "qa" });
    const lostRetry = await lockedJob("t", { n: "lost retry" }, { workerPool: pool, lockedAgo: "1 hour", attempts: 2 });
    await historyRow(lostRetry, 1); // its first attempt ran; the second never began
    const running = await lockedJob("t", { n: "running" }, { workerPool: pool, lockedAgo: "1 hour", queue: "qr" });
    const young = await lockedJob("t", { n: "young" }, { workerPool: pool, lockedAgo: "1 second", queue: "qy" });
    const begun = await lockedJob("t", { n: "begun" }, { workerPool: pool, lockedAgo: "1 hour" });
    await historyRow(begun, 1);
    const otherPool = await lockedJob("t", { n: "other" }, { workerPool: "pool-b", lockedAgo: "1 hour", queue: "qb" });

    const result = await releaseLostJobs(db.pool, pool, [running], 30_000);
    assert.deepEqual(result.released.sort(), [lost, lostRetry].sort());
    assert.equal(result.suspects, 2, "the young lock and the begun run are still locked by the pool and held by no worker");

    assert.deepEqual(await jobState(lost), { locked_by: null, attempts: 0, queue_locked_by: null }, "unlocked, attempt given back, queue freed");
    assert.deepEqual(await jobState(lostRetry), { locked_by: null, attempts: 1, queue_locked_by: null });
    assert.deepEqual(await jobState(running), { locked_by: pool, attempts: 1, queue_locked_by: pool });
    assert.deepEqual(await jobState(young), { locked_by: pool, attempts: 1, queue_locked_by: pool });
    assert.deepEqual(await jobState(begun), { locked_by: pool, attempts: 1, queue_locked_by: null });
    assert.deepEqual(await jobState(otherPool), { locked_by: "pool-b", attempts: 1, queue_locked_by: "pool-b" });

    // Again: nothing more to release, same suspects; with the young one old enough, it goes too.
    assert.deepEqual(await releaseLostJobs(db.pool, pool, [running], 30_000), { released: [], suspects: 2 });
    assert.deepEqual(await releaseLostJobs(db.pool, pool, [running], 0), { released: [young], suspects: 1 });
    assert.deepEqual(await jobState(young), { locked_by: null, attempts: 0, queue_locked_by: null });
    await db.pool.query("delete from graphile_worker._private_jobs");
    await db.pool.query("delete from scheduler.job_runs");
  });

  it("after a failover, releases at once what the pool locked on the old primary (before this one took over)", async () => {
    const pool = "pool-f";
    const before = await lockedJob("t", { n: "before the promotion" }, { workerPool: pool, lockedAgo: "5 seconds" });
    // This server became the primary 2 s ago (as the first statement on a new timeline records it).
    await db.pool.query("update scheduler.server_timelines set first_seen_at = now() - interval '2 seconds' where timeline = scheduler.current_timeline()");
    await lockedJob("t", { n: "after the promotion" }, { workerPool: pool, lockedAgo: "1 second" });
    try {
      assert.deepEqual(await releaseLostJobs(db.pool, pool, [], 30_000), { released: [before], suspects: 1 }, "the lock taken since the promotion waits for the threshold");
    } finally {
      await db.pool.query("update scheduler.server_timelines set first_seen_at = '-infinity' where timeline = scheduler.current_timeline()");
      await db.pool.query("delete from graphile_worker._private_jobs");
    }
  });

  it("skips a job another transaction has locked (a completion in flight), and counts it as a suspect", async () => {
    const pool = "pool-c";
    const id = await lockedJob("t", { n: "busy" }, { workerPool: pool, lockedAgo: "1 hour" });
    const holder = await db.pool.connect();
    try {
      await holder.query("begin");
      await holder.query("select 1 from graphile_worker._private_jobs where id = $1 for update", [id]);
      assert.deepEqual(await releaseLostJobs(db.pool, pool, [], 30_000), { released: [], suspects: 1 });
    } finally {
      await holder.query("rollback");
      holder.release();
    }
    assert.deepEqual(await releaseLostJobs(db.pool, pool, [], 30_000), { released: [id], suspects: 0 });
    await db.pool.query("delete from graphile_worker._private_jobs");
  });
});

const tally = defineJob({
  name: "tally",
  description: "returns at once",
  payload: { tag: z.string() },
  exclusive: false,
  async run({ payload }) {
    return { itemsProcessed: 1, itemsFailed: 0, message: payload.tag };
  },
});

const slow = defineJob({
  name: "slow",
  description: "sleeps `ms` in the database",
  payload: { ms: z.number().int().min(0) },
  exclusive: false,
  timeoutMs: 60_000,
  async run({ db: conn, payload }) {
    await conn.query("select pg_sleep($1::float8 / 1000)", [payload.ms]);
    return { itemsProcessed: 1, itemsFailed: 0, message: "slept" };
  },
});

describe("a live node's lost job locks", () => {
  let node: SchedulerHandle | undefined;
  const logs: { msg: string; time: number; suspects?: number; jobsReleased?: string[] }[] = [];
  let workerPool = "";

  before(async () => {
    const logger = pino({ level: "debug" }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    node = await startScheduler({
      connectionString: db.connectionString,
      taskDirectory: null,
      jobs: [tally, slow],
      crontab: "",
      bootstrapJobs: [],
      services: false,
      concurrency: 4,
      logger,
      cluster: { heartbeatMs: 500, deadAfterMs: DEAD_AFTER_MS, rescueIntervalMs: 500, giveUpMs: 60_000 },
    });
    workerPool = await eventually(async () => (await db.pool.query("select worker_pool_id from scheduler.nodes where node_id = $1", [node!.nodeId])).rows[0]?.worker_pool_id as string | null, {
      what: "the node's worker pool id",
    });
  });

  after(async () => {
    await node?.stop();
  });

  const checks = (since: number) => logs.filter((line) => line.msg === "checked for job locks lost with a connection" && line.time >= since);
  const runsOf = async (jobId: string) => (await db.pool.query("select attempt, status, message, started_at from scheduler.job_runs where job_id = $1 order by id", [jobId])).rows;

  /** Ends one idle session of the node's pool (not its heartbeat's, which holds the node's liveness lock). */
  const breakPoolConnection = () =>
    eventually(
      async () =>
        (
          await db.pool.query(
            `select pg_terminate_backend(a.pid) as cut
             from pg_stat_activity a
             where a.application_name = $1 and a.state = 'idle'
               and not exists (select 1 from pg_locks l where l.pid = a.pid and l.locktype = 'advisory')
             limit 1`,
            [applicationNameFor(node!.nodeId)],
          )
        ).rows[0]?.cut === true,
      // Pooled connections close 2 s after use; the next poll (at most 30 s away) opens one.
      { timeoutMs: 45_000, intervalMs: 20, what: "an idle pool connection of the node" },
    );

  it("stays locked while the node's connections are fine, and runs once, on attempt 1, soon after one of them fails", async () => {
    const startedAt = Date.now();
    const id = await lockedJob("tally", { tag: "lost" }, { workerPool, lockedAgo: "1 hour", queue: "lost-q" });

    // Control: no failed connection, no check; graphile-worker would wait 4 hours.
    await sleep(DEAD_AFTER_MS + 2000);
    assert.deepEqual(await jobState(id), { locked_by: workerPool, attempts: 1, queue_locked_by: workerPool }, "still locked, as get_job left it");
    assert.deepEqual(await runsOf(id), [], "never run");
    assert.equal(checks(startedAt).length, 0, "no lost-lock check while connections are fine");

    await breakPoolConnection();
    const brokenAt = Date.now();
    await eventually(async () => (await runsOf(id)).some((run) => run.status === "success"), { timeoutMs: DEAD_AFTER_MS + 15_000, intervalMs: 100, what: "the lost job to run" });
    const runs = await runsOf(id);
    assert.equal(runs.length, 1, "run exactly once");
    assert.equal(runs[0].attempt, 1, "on attempt 1: the attempt get_job charged was given back");
    assert.equal(runs[0].message, "lost");
    const delay = (runs[0].started_at as Date).getTime() - brokenAt;
    assert.ok(delay >= DEAD_AFTER_MS - 500, `not before the lock could be told from one in flight (${delay} ms)`);
    assert.ok(delay < DEAD_AFTER_MS + 8000, `within a few seconds of the check being due (${delay} ms after the connection broke)`);
    const released = logs.filter((line) => line.jobsReleased?.includes(id));
    assert.equal(released.length, 1, "a warning names the released job");
    assert.equal((await db.pool.query("select count(*)::int as n from graphile_worker._private_jobs where id = $1", [id])).rows[0].n, 0, "completed");
    // Nothing left to suspect: the check stops.
    await sleep(1500);
    const afterwards = Date.now();
    await sleep(1500);
    assert.equal(checks(afterwards).length, 0, "no more checks once no suspect is left");
  });

  it("never releases a job one of its workers is running, even with an old lock and no history row", async () => {
    const { rows } = await db.pool.query<{ id: string }>("select (graphile_worker.add_job('slow', $1::json)).id", [JSON.stringify({ ms: 9000 })]);
    const id = rows[0]!.id;
    // Its 'running' row comes after a second; removed, so only the node's list of the jobs
    // its workers run protects it.
    await eventually(async () => (await runsOf(id)).length === 1, { what: "the slow run's 'running' row" });
    await db.pool.query("delete from scheduler.job_runs where job_id = $1", [id]);
    await db.pool.query("update graphile_worker._private_jobs set locked_at = now() - interval '1 hour' where id = $1", [id]);
    await breakPoolConnection();
    const brokenAt = Date.now();

    await eventually(async () => checks(brokenAt).length > 0, { timeoutMs: DEAD_AFTER_MS + 4000, what: "a lost-lock check" });
    assert.deepEqual(await jobState(id), { locked_by: workerPool, attempts: 1, queue_locked_by: null }, "still locked by the node, attempt kept");
    assert.ok(checks(brokenAt).every((line) => line.suspects === 0), "a running job is no suspect");

    await eventually(async () => (await runsOf(id)).some((run) => run.status === "success"), { timeoutMs: 20_000, what: "the slow run to finish" });
    await sleep(1000);
    const runs = await runsOf(id);
    assert.equal(runs.length, 1, "run exactly once");
    assert.equal(runs[0].attempt, 1);
    assert.equal((await db.pool.query("select count(*)::int as n from scheduler.job_runs where task = 'slow'")).rows[0].n, 1, "no second run of it");
  });
});
