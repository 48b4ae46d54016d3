import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { createPool, type Pool } from "../../src/engine/db/pool.ts";
import type { SchedulerHandle } from "../../src/engine/runner/options.ts";
import { migrate, startScheduler } from "../../src/scheduler.ts";
import { runCliProcess } from "../helpers/cli.ts";
import { testLogger } from "../helpers/db.ts";
import { createTestRoles, rightsOf, type TestRoles } from "../helpers/roles.ts";

// The platform with two roles: the owner migrates (`migrate --runtime-role`), a node connects
// as the runtime role and runs all five jobs on real data, and the CLI works as that role.
// The platform's own application role deletes users: the orphan tracking must follow it.

let roles: TestRoles & { role(label: string): string };
let database: string;
let owner: string;
let runtime: string;
let app: string;
let ownerPool: Pool;
let runtimePool: Pool;
let handle: SchedulerHandle | undefined;

const env = (role: string) => ({ DATABASE_URL: roles.url(role, database), SCHEDULER_RECONCILE_SERVICES: "false" });

async function seed(): Promise<void> {
  await ownerPool.query(`
    insert into users (id) values ('kept-user'), ('gone-user');
    insert into logs (id, "timestamp", user_id) values
      ('old', now() - interval '60 days', 'kept-user'),
      ('recent', now() - interval '1 day', 'kept-user'),
      ('orphan', now() - interval '1 day', 'gone-user');
    insert into user_sessions (session_id, started_at, last_activity_at, ip_address, is_scanner) values
      ('idle', now() - interval '3 hours', now() - interval '2 hours', '198.51.100.1', false),
      ('active', now() - interval '3 hours', now(), '198.51.100.2', false),
      ('scan-1', now() - interval '1 hour', now(), '203.0.113.7', true),
      ('scan-2', now() - interval '1 hour', now(), '203.0.113.7', true),
      ('scan-3', now() - interval '1 hour', now(), '203.0.113.7', true);
    insert into user_contexts (context_id, created_at) values ('empty', now() - interval '3 hours'), ('used', now() - interval '3 hours');
    insert into task_messages (context_id, content) values ('used', 'hello');
    insert into oauth_auth_codes (code, expires_at) values ('spent', now() - interval '2 days'), ('fresh', now() + interval '1 hour');
    insert into oauth_refresh_tokens (token_id, expires_at) values ('expired', now() - interval '2 days'), ('valid', now() + interval '1 day');
    insert into fingerprint_reputation (fingerprint_hash, last_seen_at, total_request_count, last_ip_address)
      values ('noisy', now() - interval '5 minutes', 500, '198.51.100.9');
  `);
}

describe("the platform with an owner and a runtime role", () => {
  before(async () => {
    roles = await createTestRoles(["own", "rt", "app"]);
    owner = roles.role("own");
    runtime = roles.role("rt");
    app = roles.role("app");
    database = await roles.createDatabase(owner);
    ownerPool = createPool(roles.url(owner, database), { max: 4 });
    runtimePool = createPool(roles.url(runtime, database), { max: 4 });
    const result = await migrate(ownerPool, { runtimeRole: runtime, logger: testLogger });
    assert.deepEqual(result.granted, [runtime]);
    // The platform's application role: it deletes users and has no right on the scheduler's schema.
    await ownerPool.query(`grant select, delete on users to ${pg.escapeIdentifier(app)}`);
    await seed();
  });
  after(async () => {
    await handle?.stop().catch(() => {});
    await ownerPool?.end().catch(() => {});
    await runtimePool?.end().catch(() => {});
    await roles?.drop();
  });

  it("the runtime role holds row rights on the platform's tables and no DDL right", async () => {
    const rights = await rightsOf(ownerPool, runtime);
    assert.ok(rights.includes("table user_contexts: DELETE"));
    assert.ok(rights.includes("table scheduler.ip_allowlist: SELECT"));
    assert.ok(!rights.includes("table scheduler.ip_allowlist: INSERT"), "the reference lists are the owner's to edit");
    assert.ok(!rights.some((line) => /: (TRUNCATE|REFERENCES|TRIGGER|CREATE)$|^owns /.test(line)), rights.join("\n"));
    for (const sql of ["create table intruder (id int)", "alter table users add column intruder int", "drop table logs", "truncate logs", "create schema intruder", "create index intruder on logs (level)"]) {
      await assert.rejects(() => runtimePool.query(sql), (error: { code?: string }) => error.code === "42501", sql);
    }
  });

  it("a user deleted by the platform's own role is recorded as removed (the trigger runs as the owner)", async () => {
    const client = new pg.Client({ connectionString: roles.url(app, database) });
    await client.connect();
    try {
      await client.query("delete from users where id = 'gone-user'");
      await assert.rejects(() => client.query("select * from scheduler.removed_users"), /permission denied for schema scheduler/);
    } finally {
      await client.end();
    }
    const { rows } = await ownerPool.query("select user_id from scheduler.removed_users");
    assert.deepEqual(rows, [{ user_id: "gone-user" }]);
  });

  it("a node started as the runtime role runs all five jobs on real data", async () => {
    handle = await startScheduler({ connectionString: roles.url(runtime, database), bootstrapJobs: [], logger: testLogger, concurrency: 2, shutdownGraceMs: 2000 });
    const run = async (name: string, payload: Record<string, unknown> = {}) => {
      const { run: finished } = await handle!.runJob(name, payload, { wait: true, timeoutMs: 30_000 });
      assert.equal(finished?.status, "success", `${name}: ${finished?.error}`);
      return finished!;
    };
    await run("cleanup_inactive_sessions");
    await run("cleanup_empty_contexts");
    await run("database_cleanup");
    await run("malicious_ip_blacklist");
    await run("behavioral_analysis");

    const q = async (sql: string) => (await ownerPool.query(sql)).rows;
    assert.deepEqual(await q("select session_id from user_sessions where ended_at is not null"), [{ session_id: "idle" }]);
    assert.deepEqual(await q("select context_id from user_contexts order by 1"), [{ context_id: "used" }]);
    assert.deepEqual(await q("select id from logs order by 1"), [{ id: "recent" }], "old and orphaned logs deleted");
    assert.deepEqual(await q("select code from oauth_auth_codes"), [{ code: "fresh" }]);
    assert.deepEqual(await q("select token_id from oauth_refresh_tokens"), [{ token_id: "valid" }]);
    assert.deepEqual(await q("select ip_address, ban_source from banned_ips"), [{ ip_address: "203.0.113.7", ban_source: "malicious_ip_blacklist" }]);
    assert.deepEqual(await q("select is_flagged from fingerprint_reputation"), [{ is_flagged: true }]);
    assert.deepEqual(await q("select ip_address from scheduler.ban_offences"), [{ ip_address: "203.0.113.7" }]);
  });

  it("the CLI works as the runtime role: status, run, pause, resume, history, nodes, bans, services", async () => {
    const cli = async (...args: string[]) => {
      const result = await runCliProcess(args, env(runtime));
      assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
      return result.stdout;
    };
    assert.match(await cli("status"), /database_cleanup/);
    await cli("pause", "database_cleanup", "--reason", "maintenance");
    assert.match(await cli("status"), /PAUSED/);
    await cli("resume", "database_cleanup");
    assert.match(await cli("run", "cleanup_inactive_sessions", "--wait"), /success/);
    assert.match(await cli("history", "cleanup_inactive_sessions"), /success/);
    assert.match(await cli("nodes"), new RegExp(handle!.nodeId));
    assert.match(await cli("ban", "192.0.2.10", "--reason", "test", "--duration", "1h"), /192\.0\.2\.10/);
    assert.match(await cli("bans", "list"), /192\.0\.2\.10/);
    await cli("unban", "192.0.2.10", "--forget");
    await cli("services", "list");
  });
});
