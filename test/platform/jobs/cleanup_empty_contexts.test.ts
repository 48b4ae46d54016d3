import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import type { Queryable } from "../../../src/engine/db/pool.ts";
import { cleanupEmptyContexts, deleteEmptyContexts } from "../../../src/platform/jobs/cleanup_empty_contexts/index.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { runJobLogic, runThroughWorker } from "../../helpers/jobs.ts";

const db = useTestDatabase();

async function reset(): Promise<void> {
  await db.pool.query("truncate user_contexts, task_messages, mcp_tool_executions");
  await db.pool.query("delete from scheduler.cleanup_state where name = 'cleanup_empty_contexts'");
  await db.pool.query("delete from scheduler.job_runs; delete from graphile_worker._private_jobs");
}

/** A context created `age` ago (an interval), with the given number of messages and MCP executions. */
async function context(id: string, age: string, extras: { messages?: number; executions?: number } = {}): Promise<void> {
  await db.pool.query("insert into user_contexts (context_id, created_at) values ($1, now() - $2::interval)", [id, age]);
  await db.pool.query("insert into task_messages (context_id, role) select $1, 'user' from generate_series(1, $2)", [id, extras.messages ?? 0]);
  await db.pool.query("insert into mcp_tool_executions (mcp_execution_id, context_id) select $1 || '-exec-' || g, $1 from generate_series(1, $2) g", [id, extras.executions ?? 0]);
}

async function remaining(): Promise<string[]> {
  const { rows } = await db.pool.query<{ context_id: string }>("select context_id from user_contexts order by context_id");
  return rows.map((row) => row.context_id);
}

/** Records the rows each statement changed, to check that batches stay bounded. */
function recording(inner: Queryable): Queryable & { deletes: number[] } {
  const deletes: number[] = [];
  return {
    deletes,
    async query(text, values) {
      const result = await inner.query(text, values);
      if (/\bdelete\s+from\b/i.test(text)) deletes.push(result.rowCount ?? 0);
      return result;
    },
  } as Queryable & { deletes: number[] };
}

async function seedRules(): Promise<void> {
  await context("empty-30d", "30 days");
  await context("empty-2h", "2 hours");
  await context("empty-1h-plus", "1 hour 1 second");
  // a minute inside the retention: still inside when the job runs, however loaded the machine
  await context("empty-1h-minus", "59 minutes");
  await context("empty-new", "0 seconds");
  await context("messages-2h", "2 hours", { messages: 2 });
  await context("mcp-2h", "2 hours", { executions: 1 });
  await context("both-2h", "2 hours", { messages: 1, executions: 1 });
}

describe("cleanup_empty_contexts", () => {
  beforeEach(reset);

  it("deletes contexts older than an hour with no messages and no MCP executions, and only those", async () => {
    await seedRules();
    const result = await runJobLogic(db.pool, cleanupEmptyContexts);
    assert.equal(result.itemsProcessed, 3);
    assert.equal(result.details?.emptyContexts, 3);
    assert.deepEqual(await remaining(), ["both-2h", "empty-1h-minus", "empty-new", "mcp-2h", "messages-2h"]);
    const kept = await db.pool.query("select count(*)::int as n from task_messages");
    assert.equal(kept.rows[0].n, 3, "messages are never touched");
  });

  it("treats the cutoff as strict and the window start as inclusive", async () => {
    const cutoff = "2024-01-01 12:00:00+00";
    const from = "2024-01-01 10:00:00+00";
    const rows: [string, string][] = [
      ["at-cutoff", cutoff],
      ["just-before-cutoff", "2024-01-01 11:59:59.999999+00"],
      ["at-from", from],
      ["just-before-from", "2024-01-01 09:59:59.999999+00"],
    ];
    for (const [id, at] of rows) await db.pool.query("insert into user_contexts (context_id, created_at) values ($1, $2)", [id, at]);
    const deleted = await deleteEmptyContexts(db.pool, { from, to: cutoff }, 10);
    assert.equal(deleted, 2);
    assert.deepEqual(await remaining(), ["at-cutoff", "just-before-from"]);
  });

  it("honours retentionHours", async () => {
    await seedRules();
    const result = await runJobLogic(db.pool, cleanupEmptyContexts, { retentionHours: 3 });
    assert.equal(result.itemsProcessed, 1);
    assert.ok(!(await remaining()).includes("empty-30d"));
    assert.ok((await remaining()).includes("empty-2h"));
  });

  it("dry run reports the same count and changes nothing, not even its watermark", async () => {
    await seedRules();
    const dry = await runJobLogic(db.pool, cleanupEmptyContexts, { enforce: false });
    assert.equal(dry.itemsProcessed, 3);
    assert.match(dry.message, /^dry run: would delete 3/);
    assert.equal((await remaining()).length, 8);
    const state = await db.pool.query("select 1 from scheduler.cleanup_state where name = 'cleanup_empty_contexts'");
    assert.equal(state.rows.length, 0);
    const real = await runJobLogic(db.pool, cleanupEmptyContexts);
    assert.equal(real.itemsProcessed, dry.itemsProcessed);
  });

  it("is safe to run twice", async () => {
    await seedRules();
    await runJobLogic(db.pool, cleanupEmptyContexts);
    const before = await remaining();
    const second = await runJobLogic(db.pool, cleanupEmptyContexts);
    assert.equal(second.itemsProcessed, 0);
    assert.deepEqual(await remaining(), before);
  });

  it("works in small batches, even when many contexts share one created_at, and no batch exceeds its size", async () => {
    for (const batchSize of [1, 2, 3]) {
      await reset();
      await db.pool.query(`
        insert into user_contexts (context_id, created_at)
        select 'same-' || lpad(g::text, 2, '0'), date_trunc('second', now()) - interval '2 hours' from generate_series(1, 25) g`);
      await db.pool.query("insert into task_messages (context_id) select 'same-' || lpad(g::text, 2, '0') from generate_series(1, 25, 5) g");
      await db.pool.query("insert into user_contexts (context_id, created_at) select 'spread-' || g, now() - g * interval '1 minute' - interval '1 hour' from generate_series(1, 17) g");
      const { rows } = await db.pool.query<{ cutoff: string }>("select (now() - interval '1 hour')::text as cutoff");
      const client = recording(db.pool);
      const deleted = await deleteEmptyContexts(client, { from: "-infinity", to: rows[0]!.cutoff }, batchSize);
      assert.equal(deleted, 20 + 17);
      assert.ok(Math.max(...client.deletes) <= batchSize, `a batch of ${Math.max(...client.deletes)} rows exceeds ${batchSize}`);
      assert.deepEqual(await remaining(), ["same-01", "same-06", "same-11", "same-16", "same-21"]);
    }
    const again = await runJobLogic(db.pool, cleanupEmptyContexts, { batchSize: 1 });
    assert.equal(again.itemsProcessed, 0);
  });

  it("after its first run looks only at contexts created since the last one, until a full scan", async () => {
    await context("old-empty", "5 hours");
    const first = await runJobLogic(db.pool, cleanupEmptyContexts);
    assert.equal(first.details?.fullScan, "first run");
    assert.equal(first.itemsProcessed, 1);

    // Created (as far as created_at says) long before the watermark: an import, or a context
    // whose messages were deleted later. Only a full scan looks that far back.
    await context("backdated", "3 days");
    await context("recent", "80 minutes");
    const incremental = await runJobLogic(db.pool, cleanupEmptyContexts);
    assert.equal(incremental.details?.fullScan, null);
    assert.deepEqual(await remaining(), ["backdated"]);

    const requested = await runJobLogic(db.pool, cleanupEmptyContexts, { fullScan: true });
    assert.equal(requested.details?.fullScan, "requested");
    assert.deepEqual(await remaining(), []);

    await context("backdated-2", "3 days");
    await db.pool.query("update scheduler.cleanup_state set last_full_scan_at = now() - interval '8 days' where name = 'cleanup_empty_contexts'");
    const skipped = await runJobLogic(db.pool, cleanupEmptyContexts, { fullScan: false });
    assert.equal(skipped.details?.fullScan, null);
    assert.deepEqual(await remaining(), ["backdated-2"]);
    const stale = await runJobLogic(db.pool, cleanupEmptyContexts);
    assert.equal(stale.details?.fullScan, "stale");
    assert.deepEqual(await remaining(), []);
    const fresh = await runJobLogic(db.pool, cleanupEmptyContexts, { fullScanDays: 7 });
    assert.equal(fresh.details?.fullScan, null, "a completed full scan resets the clock");
  });

  it("records a history row when run through the worker", async () => {
    await seedRules();
    await runThroughWorker(db.pool, [cleanupEmptyContexts], [{ task: "cleanup_empty_contexts" }]);
    const { rows } = await db.pool.query("select status, items_processed, details from scheduler.job_runs where task = 'cleanup_empty_contexts'");
    assert.equal(rows.length, 1);
    assert.equal(rows[0].status, "success");
    assert.equal(Number(rows[0].items_processed), 3);
    assert.equal(rows[0].details.emptyContexts, 3);
  });

  it("fails bad payloads at once, permanently, naming the field", async () => {
    await seedRules();
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ retentionHours: "1" }, /retentionHours/],
      [{ retentionHours: 0 }, /retentionHours/],
      [{ batchSize: 0 }, /batchSize/],
      [{ batchSize: 1.5 }, /batchSize/],
      [{ fullScan: "yes" }, /fullScan/],
      [{ retention: 1 }, /retention/],
    ];
    await runThroughWorker(db.pool, [cleanupEmptyContexts], bad.map(([payload]) => ({ task: "cleanup_empty_contexts", payload })));
    const { rows } = await db.pool.query("select status, error, payload from scheduler.job_runs order by id");
    assert.equal(rows.length, bad.length);
    for (const [i, [, field]] of bad.entries()) {
      assert.equal(rows[i].status, "failed");
      assert.match(rows[i].error, field);
    }
    const jobs = await db.pool.query("select attempts, max_attempts from graphile_worker.jobs where task_identifier = 'cleanup_empty_contexts'");
    assert.equal(jobs.rows.length, bad.length);
    for (const job of jobs.rows) assert.equal(job.attempts, job.max_attempts, "no retry left");
    assert.equal((await remaining()).length, 8, "nothing deleted");
  });

  it("re-checks its candidates under a snapshot taken after they were locked", async () => {
    await context("c", "2 hours");
    // One statement: what it saw when it started, a pause, then the re-check it relies on.
    // The pause waits for an advisory lock this test holds until the message is committed (a
    // fixed pg_sleep could end before a loaded machine had inserted it).
    const holder = await db.pool.connect();
    let statement: Promise<{ rows: unknown[] }> | undefined;
    try {
      await holder.query("select pg_advisory_lock(7201)");
      statement = db.pool.query(`
        with before as materialized (select count(*)::int as n from task_messages where context_id = 'c'),
        pause as materialized (select pg_advisory_xact_lock(7201) from before),
        after as materialized (select array(select scheduler.unused_context_ids(array['c'])) as ids from pause)
        select (select n from before) as messages_seen_at_start, (select ids from after) as still_unused`);
      for (;;) {
        const { rows } = await db.pool.query("select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and wait_event = 'advisory'");
        if (rows.length > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await db.pool.query("insert into task_messages (context_id, role) values ('c', 'user')");
    } finally {
      await holder.query("select pg_advisory_unlock(7201)");
      holder.release();
    }
    const { rows } = await statement!;
    assert.deepEqual(rows[0], { messages_seen_at_start: 0, still_unused: [] });
  });

  it("never deletes a context a concurrent writer posts a message to", async () => {
    const total = 6000;
    await db.pool.query(`
      insert into user_contexts (context_id, created_at)
      select 'c-' || g, now() - interval '2 hours' - g * interval '1 second' from generate_series(1, $1) g`, [total]);
    // As on a platform whose messages reference their context: inserting a message locks the
    // context row (FOR KEY SHARE) and fails once the context is gone.
    await db.pool.query("alter table task_messages add constraint task_messages_context_fk foreign key (context_id) references user_contexts (context_id) on delete cascade");
    const posted: string[] = [];
    const young: string[] = [];
    let running = true;
    let postedDuringRun = 0;
    let jobRunning = false;
    // Two ways to post: touch the context (updated_at) and insert the message in one
    // statement, or just insert the message and let the foreign key check the context.
    const touchAndPost = `
      with touched as (update user_contexts set updated_at = now() where context_id = $1 returning context_id)
      insert into task_messages (context_id, role) select context_id, 'user' from touched returning context_id`;
    const justPost = "insert into task_messages (context_id, role) values ($1, 'user') returning context_id";
    const writer = async (seed: number, sql: string) => {
      const client = await db.pool.connect();
      try {
        for (let i = 0; running; i++) {
          const id = `c-${1 + ((i * 7919 + seed * 104_729) % total)}`;
          const rowCount = await client.query(sql, [id]).then((r) => r.rowCount, (error: { code?: string }) => {
            if (error.code === "23503") return 0; // the context was deleted first: no message
            throw error;
          });
          if (rowCount === 1) {
            posted.push(id);
            if (jobRunning) postedDuringRun++;
          }
          if (i % 25 === 0) {
            await client.query("insert into user_contexts (context_id) values ($1)", [`young-${seed}-${i}`]);
            young.push(`young-${seed}-${i}`);
          }
        }
      } finally {
        client.release();
      }
    };
    const writers = [writer(1, touchAndPost), writer(2, justPost), writer(3, justPost)];
    try {
      while (posted.length < 10) await new Promise((resolve) => setTimeout(resolve, 2));
      // Big batches: each statement runs long enough for messages to commit while it runs.
      jobRunning = true;
      await runJobLogic(db.pool, cleanupEmptyContexts, { batchSize: 1000 });
      jobRunning = false;
    } finally {
      running = false;
      await Promise.all(writers);
    }
    try {
      assert.ok(postedDuringRun > 0, "the writers posted while the job ran");
      const left = new Set(await remaining());
      const lost = [...new Set(posted)].filter((id) => !left.has(id));
      assert.deepEqual(lost, [], "contexts deleted although a message was posted to them");
      const messages = await db.pool.query("select count(*)::int as n from task_messages");
      assert.equal(messages.rows[0].n, posted.length, "every posted message is still there");
      for (const id of young) assert.ok(left.has(id), `young context ${id} was deleted`);
      // Whatever was skipped because it was locked at the time goes on the next run.
      await runJobLogic(db.pool, cleanupEmptyContexts, { fullScan: true });
      assert.deepEqual((await remaining()).sort(), [...new Set([...posted, ...young])].sort());
    } finally {
      await db.pool.query("alter table task_messages drop constraint task_messages_context_fk");
    }
  });
});
