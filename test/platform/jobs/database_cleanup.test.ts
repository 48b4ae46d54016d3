import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import type { Queryable } from "../../../src/engine/db/pool.ts";
import { databaseCleanup } from "../../../src/platform/jobs/database_cleanup/index.ts";
import { countOldLogs, deleteOldLogs } from "../../../src/platform/jobs/database_cleanup/logs.ts";
import { cleanAuthCodes, cleanRefreshTokens } from "../../../src/platform/jobs/database_cleanup/oauth.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { runJobLogic, runThroughWorker } from "../../helpers/jobs.ts";

const db = useTestDatabase();
const q = (text: string, values?: unknown[]) => db.pool.query(text, values);

async function reset(): Promise<void> {
  await q("truncate logs, users, oauth_auth_codes, oauth_refresh_tokens, mcp_tool_executions, user_contexts, scheduler.removed_users");
  // after the truncate of users, which asks for a full scan
  await q("delete from scheduler.cleanup_state where name = 'database_cleanup.orphaned_logs'");
  await q("delete from scheduler.job_runs; delete from graphile_worker._private_jobs");
}

async function users(...ids: string[]): Promise<void> {
  await q("insert into users (id) select unnest($1::text[])", [ids]);
}

/** A log written `age` (an interval) ago by `userId`. */
async function log(id: string, age: string, userId: string | null = null): Promise<void> {
  await q(`insert into logs (id, "timestamp", user_id) values ($1, now() - $2::interval, $3)`, [id, age, userId]);
}

async function ids(table: string, column: string): Promise<string[]> {
  const { rows } = await q(`select ${column} as id from ${table} order by 1`);
  return rows.map((row) => row.id as string);
}

/** Records the rows each delete statement changed, to check that batches stay bounded. */
function recording(inner: Queryable): Queryable & { deletes: number[] } {
  const deletes: number[] = [];
  return {
    deletes,
    async query(text: string, values?: unknown[]) {
      const result = await inner.query(text, values);
      if (/\bdelete\s+from\b/i.test(text)) deletes.push(result.rowCount ?? 0);
      return result;
    },
  } as Queryable & { deletes: number[] };
}

const noScan = { fullOrphanScan: false };

describe("database_cleanup: logs by age", () => {
  beforeEach(reset);

  it("deletes logs older than logRetentionDays (30), at and past the edge, and keeps the rest", async () => {
    await log("31d", "31 days");
    await log("30d-plus", "30 days 1 second");
    await log("30d-at", "30 days"); // exactly at the edge when seeded, a little past it when the job runs
    await log("30d-minus", "29 days 23 hours 59 minutes"); // a minute inside: still inside when the job runs
    await log("1d", "1 day");
    const result = await runJobLogic(db.pool, databaseCleanup, noScan);
    assert.equal(result.details?.oldLogs, 3);
    assert.deepEqual(await ids("logs", "id"), ["1d", "30d-minus"]);
    const shorter = await runJobLogic(db.pool, databaseCleanup, { ...noScan, logRetentionDays: 0.5 });
    assert.equal(shorter.details?.oldLogs, 2);
    assert.deepEqual(await ids("logs", "id"), []);
  });

  it("treats the log cutoff and token expiry as strict, to the microsecond", async () => {
    const edge = "2024-03-01 00:00:00+00";
    const before = "2024-02-29 23:59:59.999999+00";
    await q(`insert into logs (id, "timestamp") values ('at', $1), ('before', $2), ('after', '2024-03-01 00:00:00.000001+00')`, [edge, before]);
    await q("insert into oauth_auth_codes (code, expires_at) values ('at', $1), ('before', $2)", [edge, before]);
    await q("insert into oauth_refresh_tokens (token_id, expires_at) values ('at', $1), ('before', $2)", [edge, before]);
    assert.equal(await countOldLogs(db.pool, edge), 1);
    assert.equal((await deleteOldLogs(db.pool, edge, 10)).deleted, 1);
    assert.equal(await cleanAuthCodes(db.pool, edge, { enforce: true, batchSize: 10 }), 1);
    assert.equal(await cleanRefreshTokens(db.pool, edge, { enforce: true, batchSize: 10 }), 1);
    assert.deepEqual(await ids("logs", "id"), ["after", "at"]);
    assert.deepEqual(await ids("oauth_auth_codes", "code"), ["at"]);
    assert.deepEqual(await ids("oauth_refresh_tokens", "token_id"), ["at"]);
  });

  it("never deletes more than batchSize logs per statement, also when many share one timestamp", async () => {
    for (const order of ["timestamp", "pages", "auto"] as const) {
      for (const batchSize of [1, 3, 4]) {
        await reset();
        await q(`insert into logs (id, "timestamp") select 'early-' || g, now() - interval '40 days' - g * interval '1 minute' from generate_series(1, 5) g`);
        await q(`insert into logs (id, "timestamp") select 'tie-' || g, date_trunc('second', now()) - interval '35 days' from generate_series(1, 10) g`);
        await q(`insert into logs (id, "timestamp") select 'late-' || g, now() - interval '31 days' - g * interval '1 second' from generate_series(1, 4) g`);
        await log("young", "1 day");
        const client = recording(db.pool);
        const { rows } = await q("select (now() - interval '30 days')::text as cutoff");
        const result = await deleteOldLogs(client, rows[0].cutoff, batchSize, { order });
        assert.equal(result.deleted, 19);
        if (order !== "auto") assert.equal(result.order, order);
        assert.ok(Math.max(...client.deletes) <= batchSize, `${order}: a batch of ${Math.max(...client.deletes)} exceeds ${batchSize}`);
        assert.deepEqual(await ids("logs", "id"), ["young"]);
      }
    }
  });

  /** `old` logs older than 30 days and `young` ones, written in random order: old ones on every page. */
  async function spreadLogs(old: number, young: number): Promise<void> {
    await q(`insert into logs (id, "timestamp", message)
      select id, ts, repeat('x', 60) from (
        select 'old-' || g as id, now() - interval '31 days' - g * interval '1 second' as ts from generate_series(1, $1::int) g
        union all
        select 'young-' || g, now() - interval '29 days' + g * interval '1 second' from generate_series(1, $2::int) g
      ) x
      order by hashtext(id)`, [old, young]);
    await q("vacuum analyze logs");
  }

  it("old logs spread through the table: auto sweeps page ranges, deletes every old log and no young one", async () => {
    await spreadLogs(12_000, 12_000);
    const { rows } = await q("select (now() - interval '30 days')::text as cutoff");
    const client = recording(db.pool);
    const result = await deleteOldLogs(client, rows[0].cutoff, 1000);
    assert.equal(result.order, "pages", `layout ${JSON.stringify(result.layout)}`);
    assert.ok(result.layout!.keysetPages > result.layout!.tablePages);
    assert.equal(result.deleted, 12_000);
    assert.ok(Math.max(...client.deletes) <= 1000, `a batch of ${Math.max(...client.deletes)} exceeds 1000`);
    const left = await q(`select count(*)::int as n, count(*) filter (where id like 'young-%')::int as young from logs`);
    assert.deepEqual(left.rows[0], { n: 12_000, young: 12_000 });
    assert.equal((await deleteOldLogs(db.pool, rows[0].cutoff, 1000)).deleted, 0, "a second run finds nothing");
  });

  it("logs written in time order: auto keeps to timestamp ranges", async () => {
    await q(`insert into logs (id, "timestamp", message)
      select 'log-' || g, now() - interval '40 days' + g * interval '1 minute', repeat('x', 60) from generate_series(1, 24000) g`);
    await q("vacuum analyze logs");
    const { rows } = await q("select (now() - interval '30 days')::text as cutoff, (select count(*)::int from logs where \"timestamp\" < now() - interval '30 days') as old");
    const result = await deleteOldLogs(db.pool, rows[0].cutoff, 1000);
    assert.equal(result.order, "timestamp", `layout ${JSON.stringify(result.layout)}`);
    assert.ok(result.layout!.keysetPages < result.layout!.tablePages);
    assert.equal(result.deleted, rows[0].old);
    assert.equal(Number((await q(`select count(*) from logs where "timestamp" < $1`, [rows[0].cutoff])).rows[0].count), 0);
  });

  it("the page sweep deletes nothing a concurrent writer renews or adds while it runs", async () => {
    await spreadLogs(8000, 8000);
    const { rows } = await q("select (now() - interval '30 days')::text as cutoff");
    const kept: string[] = [];
    let running = true;
    let writes = 0;
    const writer = async (seed: number) => {
      const client = await db.pool.connect();
      try {
        for (let i = 0; running; i++) {
          // Renew an old log (its row moves, maybe to a page the sweep has passed) and add young ones.
          const renewed = await client.query(`update logs set "timestamp" = now() where id = $1 returning id`, [`old-${1 + ((i * 7919 + seed * 104_729) % 8000)}`]);
          const added = await client.query(`insert into logs (id, message) values ($1, repeat('y', 60)) returning id`, [`new-${seed}-${i}`]);
          kept.push(...[...renewed.rows, ...added.rows].map((row) => row.id as string));
          writes++;
        }
      } finally {
        client.release();
      }
    };
    const writers = [writer(1), writer(2)];
    let result;
    try {
      while (writes < 10) await new Promise((resolve) => setTimeout(resolve, 2));
      result = await deleteOldLogs(db.pool, rows[0].cutoff, 50, { order: "pages" });
    } finally {
      running = false;
      await Promise.all(writers);
    }
    assert.equal(result.order, "pages");
    const missing = await q(`select w.id from unnest($1::text[]) w(id) where not exists (select 1 from logs t where t.id = w.id)`, [kept]);
    assert.deepEqual(missing.rows, [], "renewed or new logs were deleted");
    const young = await q(`select count(*)::int as n from logs where id like 'young-%'`);
    assert.equal(young.rows[0].n, 8000);
    // Whatever the run left (an old log updated into a page already swept) goes on the next one.
    await deleteOldLogs(db.pool, rows[0].cutoff, 50, { order: "pages" });
    assert.equal(Number((await q(`select count(*) from logs where "timestamp" < $1`, [rows[0].cutoff])).rows[0].count), 0);
  });
});

describe("database_cleanup: orphaned logs", () => {
  beforeEach(async () => {
    await reset();
    await users("alice", "bob", "carol");
    await log("alice-1", "1 day", "alice");
    await log("bob-1", "1 day", "bob");
    await log("bob-new", "0 seconds", "bob");
    await log("nobody-1", "1 day", null);
    await log("ghost-old", "2 days", "ghost");
    await log("ghost-young", "10 minutes", "ghost");
  });

  it("deletes the logs of a deleted user, any age, and keeps logs of existing users and logs with no user", async () => {
    await q("delete from users where id = 'bob'");
    const result = await runJobLogic(db.pool, databaseCleanup, noScan);
    assert.equal(result.details?.orphanedLogs, 2);
    assert.deepEqual(await ids("logs", "id"), ["alice-1", "ghost-old", "ghost-young", "nobody-1"]);
    assert.deepEqual(await ids("scheduler.removed_users", "user_id"), ["bob"], "kept for late writers until the retention passes");
  });

  it("treats a renamed user id like a removed one", async () => {
    await q("update users set id = 'alice-2' where id = 'alice'");
    await q("update users set email = 'x@example.com' where id = 'carol'");
    await runJobLogic(db.pool, databaseCleanup, noScan);
    assert.deepEqual(await ids("scheduler.removed_users", "user_id"), ["alice"]);
    assert.ok(!(await ids("logs", "id")).includes("alice-1"));
  });

  it("keeps the logs of a user deleted and created again, and forgets ids past the retention", async () => {
    await q("delete from users where id in ('bob', 'carol')");
    await users("bob");
    await q("update scheduler.removed_users set removed_at = now() - interval '31 days' where user_id = 'carol'");
    const result = await runJobLogic(db.pool, databaseCleanup, noScan);
    assert.equal(result.details?.orphanedLogs, 0);
    assert.deepEqual((result.details?.orphanScan as { removedUsersForgotten: number }).removedUsersForgotten, 2);
    assert.deepEqual(await ids("scheduler.removed_users", "user_id"), []);
    assert.ok((await ids("logs", "id")).includes("bob-1"));
  });

  it("full scan: catches ids the trigger never saw, leaving logs younger than the grace period", async () => {
    // A user removed before the scheduler was installed: the trigger was not there to see it.
    await q("alter table users disable trigger scheduler_record_deleted_users");
    await q("delete from users where id = 'carol'");
    await q("alter table users enable trigger scheduler_record_deleted_users");
    await log("carol-1", "3 days", "carol");
    const first = await runJobLogic(db.pool, databaseCleanup);
    const scan = first.details?.orphanScan as { fullScan: string; userIdsScanned: number; orphanUserIds: number; foundByFullScan: number };
    assert.equal(scan.fullScan, "first run");
    assert.equal(scan.userIdsScanned, 4); // alice, bob, carol, ghost
    assert.equal(scan.orphanUserIds, 2);
    assert.equal(scan.foundByFullScan, 2);
    assert.deepEqual(await ids("logs", "id"), ["alice-1", "bob-1", "bob-new", "ghost-young", "nobody-1"]);
    const second = await runJobLogic(db.pool, databaseCleanup);
    assert.equal((second.details?.orphanScan as { fullScan: string | null }).fullScan, null);
  });

  it("full scan: runs when requested, when stale and after TRUNCATE users; false skips it", async () => {
    const reason = async (payload: Record<string, unknown> = {}) =>
      ((await runJobLogic(db.pool, databaseCleanup, payload)).details?.orphanScan as { fullScan: string | null }).fullScan;
    assert.equal(await reason(noScan), null, "false skips even the first scan");
    assert.equal(await reason(), "first run");
    assert.equal(await reason(), null);
    assert.equal(await reason({ fullOrphanScan: true }), "requested");
    await q("update scheduler.cleanup_state set last_full_scan_at = now() - interval '8 days' where name = 'database_cleanup.orphaned_logs'");
    assert.equal(await reason({ fullOrphanScanDays: 9 }), null);
    assert.equal(await reason(), "stale");
    await q("truncate users");
    assert.equal(await reason(), "users truncated");
    assert.equal(await reason(), null);
    assert.deepEqual(await ids("logs", "id"), ["bob-new", "ghost-young", "nobody-1"], "after the truncate every user's old-enough log is orphaned");
  });
});

describe("database_cleanup: OAuth and MCP", () => {
  beforeEach(reset);

  it("deletes auth codes that expired or were used, and only expired refresh tokens", async () => {
    await q(`insert into oauth_auth_codes (code, expires_at, used_at) values
      ('expired', now() - interval '1 second', null), ('used', now() + interval '5 minutes', now()),
      ('expired-used', now() - interval '1 hour', now() - interval '2 hours'), ('fresh', now() + interval '5 minutes', null)`);
    // (fresh and valid expire minutes after the seed: seconds could pass before the job runs on a
    // loaded machine; the edge itself, to the microsecond, is the strict-cutoff test's)
    await q(`insert into oauth_refresh_tokens (token_id, expires_at) values
      ('expired', now() - interval '1 second'), ('valid', now() + interval '5 minutes')`);
    const result = await runJobLogic(db.pool, databaseCleanup, noScan);
    assert.equal(result.details?.authCodes, 3);
    assert.equal(result.details?.refreshTokens, 1);
    assert.deepEqual(await ids("oauth_auth_codes", "code"), ["fresh"]);
    assert.deepEqual(await ids("oauth_refresh_tokens", "token_id"), ["valid"]);
  });

  it("keeps MCP executions of deleted contexts unless purgeOrphanedMcpExecutions is true", async () => {
    await q("insert into user_contexts (context_id) values ('live')");
    await q(`insert into mcp_tool_executions (mcp_execution_id, context_id) values
      ('of-live', 'live'), ('of-gone-1', 'gone'), ('of-gone-2', 'gone'), ('no-context', null)`);
    const off = await runJobLogic(db.pool, databaseCleanup, noScan);
    assert.equal(off.details?.orphanedMcpExecutions, null);
    assert.match(off.message, /purge off/);
    assert.equal((await ids("mcp_tool_executions", "mcp_execution_id")).length, 4);
    const on = await runJobLogic(db.pool, databaseCleanup, { ...noScan, purgeOrphanedMcpExecutions: true, batchSize: 1 });
    assert.equal(on.details?.orphanedMcpExecutions, 2);
    assert.deepEqual(await ids("mcp_tool_executions", "mcp_execution_id"), ["no-context", "of-live"]);
  });
});

/** One of everything, eligible and not. */
async function seedAll(): Promise<void> {
  await users("alice", "bob");
  await q(`insert into logs (id, "timestamp", user_id)
    select 'old-' || g, now() - interval '40 days' - g * interval '1 minute', case when g % 3 = 0 then 'alice' end from generate_series(1, 30) g`);
  await q(`insert into logs (id, "timestamp", user_id) select 'bob-' || g, now() - g * interval '1 hour', 'bob' from generate_series(1, 12) g`);
  await q(`insert into logs (id, "timestamp", user_id) select 'ghost-' || g, now() - g * interval '1 hour', 'ghost' from generate_series(0, 5) g`);
  await q(`insert into logs (id, "timestamp", user_id) select 'alice-' || g, now() - g * interval '1 hour', 'alice' from generate_series(1, 5) g`);
  await q("delete from users where id = 'bob'");
  await q(`insert into oauth_auth_codes (code, expires_at, used_at)
    select 'code-' || g, now() + (g - 5) * interval '1 minute' + interval '30 seconds', case when g % 4 = 0 then now() end from generate_series(1, 10) g`);
  await q(`insert into oauth_refresh_tokens (token_id, expires_at) select 'token-' || g, now() + (g - 3) * interval '1 hour' + interval '30 seconds' from generate_series(1, 8) g`);
  await q("insert into user_contexts (context_id) values ('live')");
  await q(`insert into mcp_tool_executions (mcp_execution_id, context_id) select 'exec-' || g, case when g % 2 = 0 then 'live' else 'gone-' || g end from generate_series(1, 6) g`);
}

const countKeys = ["oldLogs", "orphanedLogs", "authCodes", "refreshTokens", "orphanedMcpExecutions"] as const;
const counts = (details: Record<string, unknown> | undefined) => Object.fromEntries(countKeys.map((key) => [key, details?.[key]]));

async function snapshot(): Promise<string> {
  const { rows } = await q(`select
    (select count(*) from logs) as logs, (select count(*) from oauth_auth_codes) as codes,
    (select count(*) from oauth_refresh_tokens) as tokens, (select count(*) from mcp_tool_executions) as executions,
    (select json_agg(r order by user_id) from scheduler.removed_users r) as removed,
    (select json_agg(s) from scheduler.cleanup_state s where name = 'database_cleanup.orphaned_logs') as state`);
  return JSON.stringify(rows[0]);
}

describe("database_cleanup: runs", () => {
  beforeEach(reset);
  const expected = { oldLogs: 30, orphanedLogs: 12 + 5, authCodes: 5, refreshTokens: 2, orphanedMcpExecutions: 3 };

  it("dry run reports the same counts as the real run and changes nothing", async () => {
    await seedAll();
    const before = await snapshot();
    const dry = await runJobLogic(db.pool, databaseCleanup, { enforce: false, purgeOrphanedMcpExecutions: true });
    assert.deepEqual(counts(dry.details), expected);
    assert.match(dry.message, /^dry run: would delete 57 row\(s\)/);
    assert.equal(await snapshot(), before);
    const real = await runJobLogic(db.pool, databaseCleanup, { purgeOrphanedMcpExecutions: true });
    assert.deepEqual(counts(real.details), expected);
    assert.equal(real.itemsProcessed, 57);
    assert.match(real.message, /^deleted 57 row\(s\): 30 log\(s\) older than 30 day\(s\), 17 orphaned log\(s\)/);
  });

  it("is safe to run twice", async () => {
    await seedAll();
    await runJobLogic(db.pool, databaseCleanup, { purgeOrphanedMcpExecutions: true });
    const before = await snapshot();
    const second = await runJobLogic(db.pool, databaseCleanup, { purgeOrphanedMcpExecutions: true, fullOrphanScan: true });
    assert.deepEqual(counts(second.details), { oldLogs: 0, orphanedLogs: 0, authCodes: 0, refreshTokens: 0, orphanedMcpExecutions: 0 });
    assert.equal(second.itemsProcessed, 0);
    assert.equal((await snapshot()).replace(/"last_full_scan_at":"[^"]*"|"updated_at":"[^"]*"/g, ""), before.replace(/"last_full_scan_at":"[^"]*"|"updated_at":"[^"]*"/g, ""));
  });

  it("gives the same result with batches of 1 and 2", async () => {
    for (const batchSize of [1, 2]) {
      await reset();
      await seedAll();
      const result = await runJobLogic(db.pool, databaseCleanup, { purgeOrphanedMcpExecutions: true, batchSize });
      assert.deepEqual(counts(result.details), expected);
      const left = await ids("logs", "id");
      assert.deepEqual(left, ["alice-1", "alice-2", "alice-3", "alice-4", "alice-5", "ghost-0"]);
    }
  });

  it("records its counts in the run history when run through the worker", async () => {
    await seedAll();
    await runThroughWorker(db.pool, [databaseCleanup], [{ task: "database_cleanup", payload: { enforce: false } }, { task: "database_cleanup" }]);
    const { rows } = await q("select status, dry_run, items_processed, details from scheduler.job_runs where task = 'database_cleanup' order by id");
    assert.deepEqual(rows.map((row) => [row.status, row.dry_run, Number(row.items_processed)]), [["success", true, 54], ["success", false, 54]]);
    assert.equal(rows[1].details.orphanedLogs, 17);
    assert.equal(rows[1].details.orphanedMcpExecutions, null);
  });

  it("fails bad payloads at once, permanently, naming the field", async () => {
    await seedAll();
    const before = await snapshot();
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ logRetentionDays: "30" }, /logRetentionDays/],
      [{ logRetentionDays: 0 }, /logRetentionDays/],
      [{ batchSize: 0 }, /batchSize/],
      [{ batchSize: 1_000_000 }, /batchSize/],
      [{ purgeOrphanedMcpExecutions: "yes" }, /purgeOrphanedMcpExecutions/],
      [{ fullOrphanScan: 1 }, /fullOrphanScan/],
      [{ retentionDays: 30 }, /retentionDays/],
      [{ enforce: "false" }, /enforce/],
    ];
    await runThroughWorker(db.pool, [databaseCleanup], bad.map(([payload]) => ({ task: "database_cleanup", payload })));
    const { rows } = await q("select status, error from scheduler.job_runs order by id");
    assert.equal(rows.length, bad.length);
    for (const [i, [, field]] of bad.entries()) {
      assert.equal(rows[i].status, "failed");
      assert.match(rows[i].error, field);
    }
    const jobs = await q("select attempts, max_attempts from graphile_worker.jobs where task_identifier = 'database_cleanup'");
    for (const job of jobs.rows) assert.equal(job.attempts, job.max_attempts, "no retry left");
    assert.equal(await snapshot(), before, "nothing deleted");
  });
});

describe("database_cleanup: concurrency", () => {
  beforeEach(reset);

  it("deletes nothing that a concurrent writer renews, reassigns or adds while it runs", async () => {
    await users("alive", "gone-1", "gone-2", "gone-3", "gone-4");
    await q(`insert into logs (id, "timestamp") select 'old-' || g, now() - interval '40 days' - g * interval '1 second' from generate_series(1, 6000) g`);
    await q(`insert into logs (id, "timestamp", user_id) select 'gl-' || g, now() - interval '1 day', 'gone-' || (1 + g % 4) from generate_series(1, 4000) g`);
    await q("delete from users where id like 'gone-%'");
    await q(`insert into oauth_refresh_tokens (token_id, expires_at) select 'tok-' || g, now() - interval '1 minute' from generate_series(1, 3000) g`);
    await q(`insert into oauth_auth_codes (code, expires_at) select 'old-code-' || g, now() - interval '1 minute' from generate_series(1, 1000) g`);

    const kept = { logs: [] as string[], tokens: [] as string[], codes: [] as string[] };
    let running = true;
    let writesDuringRun = 0;
    let jobRunning = false;
    const writer = async (seed: number) => {
      const client = await db.pool.connect();
      try {
        for (let i = 0; running; i++) {
          const n = 1 + ((i * 7919 + seed * 104_729) % 3000);
          // Each write commits on its own: renew a token, give a log to a live user, add rows.
          const renewed = await client.query("update oauth_refresh_tokens set expires_at = now() + interval '1 day' where token_id = $1 returning token_id as id", [`tok-${n}`]);
          const moved = await client.query("update logs set user_id = 'alive' where id = $1 returning id", [`gl-${n}`]);
          const added = await client.query("insert into logs (id, user_id) values ($1, 'alive'), ($2, null) returning id", [`new-a-${seed}-${i}`, `new-n-${seed}-${i}`]);
          const code = await client.query("insert into oauth_auth_codes (code, expires_at) values ($1, now() + interval '10 minutes') returning code as id", [`code-${seed}-${i}`]);
          kept.tokens.push(...renewed.rows.map((row) => row.id as string));
          kept.logs.push(...[...moved.rows, ...added.rows].map((row) => row.id as string));
          kept.codes.push(...code.rows.map((row) => row.id as string));
          if (jobRunning) writesDuringRun++;
        }
      } finally {
        client.release();
      }
    };
    const writers = [writer(1), writer(2)];
    try {
      while (kept.codes.length < 10) await new Promise((resolve) => setTimeout(resolve, 2));
      jobRunning = true;
      await runJobLogic(db.pool, databaseCleanup, { batchSize: 50, fullOrphanScan: false });
      jobRunning = false;
    } finally {
      running = false;
      await Promise.all(writers);
    }
    assert.ok(writesDuringRun > 0, "the writers wrote while the job ran");
    const missing = async (table: string, column: string, wanted: string[]) => {
      const { rows } = await q(`select w.id from unnest($1::text[]) w(id) where not exists (select 1 from ${table} t where t.${column} = w.id)`, [wanted]);
      return rows.map((row) => row.id as string);
    };
    assert.deepEqual(await missing("logs", "id", kept.logs), [], "reassigned or new logs were deleted");
    assert.deepEqual(await missing("oauth_refresh_tokens", "token_id", kept.tokens), [], "renewed tokens were deleted");
    assert.deepEqual(await missing("oauth_auth_codes", "code", kept.codes), [], "new codes were deleted");
    // Rows the run skipped because a writer held them go on the next run.
    await runJobLogic(db.pool, databaseCleanup, { fullOrphanScan: false });
    const { rows } = await q(`select
      (select count(*)::int from logs where "timestamp" < now() - interval '30 days') as old,
      (select count(*)::int from logs where user_id like 'gone-%') as orphaned,
      (select count(*)::int from oauth_refresh_tokens where expires_at < now()) as tokens,
      (select count(*)::int from oauth_auth_codes where expires_at < now()) as codes`);
    assert.deepEqual(rows[0], { old: 0, orphaned: 0, tokens: 0, codes: 0 });
  });
});
