import assert from "node:assert/strict";
import { describe, it, beforeEach } from "node:test";
import { cleanupInactiveSessions } from "../../../src/platform/jobs/cleanup_inactive_sessions/index.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { runJobLogic, runThroughWorker } from "../../helpers/jobs.ts";

const db = useTestDatabase();

async function seed(): Promise<void> {
  await db.pool.query("truncate user_sessions");
  // idle for: 2 h, just over 1 h, just under 1 h (by a minute, so that it is still under when
  // the job runs on a loaded machine), 0; plus one already ended long ago
  await db.pool.query(`
    insert into user_sessions (session_id, last_activity_at, ended_at) values
      ('idle-2h', now() - interval '2 hours', null),
      ('idle-1h-plus', now() - interval '1 hour 1 second', null),
      ('idle-1h-minus', now() - interval '59 minutes', null),
      ('active', now(), null),
      ('ended', now() - interval '5 hours', now() - interval '4 hours')`);
}

async function open(): Promise<string[]> {
  const { rows } = await db.pool.query<{ session_id: string }>("select session_id from user_sessions where ended_at is null order by session_id");
  return rows.map((row) => row.session_id);
}

describe("cleanup_inactive_sessions", () => {
  beforeEach(seed);

  it("ends open sessions idle for more than one hour, and only those", async () => {
    const result = await runJobLogic(db.pool, cleanupInactiveSessions);
    assert.equal(result.itemsProcessed, 2);
    assert.deepEqual(await open(), ["active", "idle-1h-minus"]);
    const { rows } = await db.pool.query("select ended_at from user_sessions where session_id = 'ended'");
    assert.ok(Date.now() - rows[0].ended_at.getTime() > 3.9 * 3600_000, "an ended session keeps its ended_at");
  });

  it("keeps a session idle for exactly one hour (the rule is strictly more than an hour)", async () => {
    // One transaction, so that now() is the same instant for the seed and the job.
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      await client.query("truncate user_sessions");
      await client.query(`insert into user_sessions (session_id, last_activity_at) values
        ('exactly-1h', now() - interval '1 hour'), ('1h-and-a-microsecond', now() - interval '1 hour 0.000001 second')`);
      const result = await cleanupInactiveSessions.run({
        payload: { inactiveHours: 1, batchSize: 10, enforce: true },
        enforce: true,
        db: client,
        logger: testLogger,
        signal: new AbortController().signal,
        jobName: "cleanup_inactive_sessions",
        task: "cleanup_inactive_sessions",
        jobId: null,
        attempt: 1,
        scheduledFor: null,
        nodeId: "test",
      });
      assert.equal(result.itemsProcessed, 1);
      const { rows } = await client.query("select session_id from user_sessions where ended_at is null");
      assert.deepEqual(rows.map((row) => row.session_id), ["exactly-1h"]);
    } finally {
      await client.query("rollback");
      client.release();
    }
  });

  it("is safe to run twice", async () => {
    await runJobLogic(db.pool, cleanupInactiveSessions);
    const second = await runJobLogic(db.pool, cleanupInactiveSessions);
    assert.equal(second.itemsProcessed, 0);
  });

  it("honours inactiveHours and small batches", async () => {
    const result = await runJobLogic(db.pool, cleanupInactiveSessions, { inactiveHours: 1.5, batchSize: 1 });
    assert.equal(result.itemsProcessed, 1);
    assert.deepEqual(await open(), ["active", "idle-1h-minus", "idle-1h-plus"]);
  });

  it("dry run counts and changes nothing", async () => {
    const result = await runJobLogic(db.pool, cleanupInactiveSessions, { enforce: false });
    assert.equal(result.itemsProcessed, 2);
    assert.equal((await open()).length, 4);
  });

  it("records a history row when run through the worker", async () => {
    await runThroughWorker(db.pool, [cleanupInactiveSessions], [{ task: "cleanup_inactive_sessions" }]);
    const { rows } = await db.pool.query("select status, items_processed, attempt, job_name from scheduler.job_runs where task = 'cleanup_inactive_sessions' order by id desc limit 1");
    assert.equal(rows[0].status, "success");
    assert.equal(Number(rows[0].items_processed), 2);
  });

  it("fails a bad payload at once, permanently, naming the field", async () => {
    await runThroughWorker(db.pool, [cleanupInactiveSessions], [{ task: "cleanup_inactive_sessions", payload: { inactiveHours: "two" } }]);
    const { rows } = await db.pool.query("select status, error from scheduler.job_runs order by id desc limit 1");
    assert.equal(rows[0].status, "failed");
    assert.match(rows[0].error, /inactiveHours/);
    const jobs = await db.pool.query("select attempts, max_attempts from graphile_worker.jobs where task_identifier = 'cleanup_inactive_sessions'");
    assert.equal(jobs.rows.length, 1);
    assert.equal(jobs.rows[0].attempts, jobs.rows[0].max_attempts, "no retry left");
  });
});
