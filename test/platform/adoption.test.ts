import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { createPool, type Pool } from "../../src/engine/db/pool.ts";
import type { SchedulerHandle } from "../../src/engine/runner/options.ts";
import { startScheduler } from "../../src/scheduler.ts";
import { runCliProcess } from "../helpers/cli.ts";
import { testLogger } from "../helpers/db.ts";
import { createTestRoles, type TestRoles } from "../helpers/roles.ts";

// A platform database that existed before the scheduler: its domain tables were created by the
// platform's own role, with columns of their own, foreign keys and none of our indexes.
// migrate adopts them (adds indexes and triggers, says what it added) and never alters a column.

const PLATFORM_SCHEMA = `
create table users (id text primary key, email text not null, display_name text, created_at timestamptz not null default now());
create table user_sessions (
  session_id text primary key, user_id text references users (id) on delete cascade,
  started_at timestamptz not null default now(), last_activity_at timestamptz not null default now(), ended_at timestamptz,
  ip_address text, country text, user_agent text, device text,
  is_bot boolean not null default false, is_scanner boolean not null default false, fingerprint_hash text);
create table user_contexts (
  context_id text primary key, user_id text references users (id) on delete cascade, name text, archived boolean not null default false,
  created_at timestamptz not null default now(), updated_at timestamptz not null default now());
create table task_messages (
  id bigint generated always as identity primary key,
  context_id text not null references user_contexts (context_id) on delete cascade,
  role text, content text, tokens int, created_at timestamptz not null default now());
create table logs (id uuid primary key default gen_random_uuid(), "timestamp" timestamptz not null default now(), level text, module text, message text, trace_id text);
create table mcp_tool_executions (mcp_execution_id text primary key, context_id text, tool_name text, duration_ms int, created_at timestamptz not null default now());
create table oauth_auth_codes (code text primary key, client_id text not null default 'web', expires_at timestamptz not null, used_at timestamptz);
create table oauth_refresh_tokens (token_id text primary key, user_id text references users (id) on delete cascade, expires_at timestamptz not null);
create table fingerprint_reputation (
  fingerprint_hash text primary key, first_seen_at timestamptz not null default now(), last_seen_at timestamptz not null default now(),
  total_session_count int not null default 0, total_request_count bigint not null default 0, peak_requests_per_minute real not null default 0,
  sustained_high_velocity_minutes int not null default 0, is_flagged boolean not null default false, flag_reason text, flagged_at timestamptz,
  reputation_score int not null default 50, abuse_incidents int not null default 0, last_abuse_at timestamptz, last_ip_address text,
  updated_at timestamptz not null default now(), notes text);
create table banned_ips (
  ip_address text primary key, reason text, banned_at timestamptz not null default now(), expires_at timestamptz,
  ban_count int not null default 1, is_permanent boolean not null default false, source_fingerprint text,
  ban_source text not null default 'manual', banned_by_admin text);
create table services (
  name text primary key, module_name text not null default 'agent', host text not null, port int not null,
  desired_status text not null default 'enabled', status text not null default 'stopped', pid int, owner_team text);
`;

/** Every column of the platform's tables as the platform defined it, and their constraints. */
const PLATFORM_DEFINITIONS = `
select format('%s.%s %s%s%s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod), case when a.attnotnull then ' not null' else '' end,
              coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')) as line
from pg_class c join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'
union all
select format('%s constraint %s', conrelid::regclass, pg_get_constraintdef(oid)) from pg_constraint where connamespace = 'public'::regnamespace
order by 1`;

let roles: TestRoles & { role(label: string): string };
let database: string;
let platform: string;
let scheduler: string;
let runtime: string;
let platformPool: Pool;
let handle: SchedulerHandle | undefined;

const migrateAs = (role: string, ...args: string[]) => runCliProcess(["migrate", ...args], { DATABASE_URL: roles.url(role, database) });

describe("a platform database that existed first", () => {
  before(async () => {
    roles = await createTestRoles(["plat", "sched", "rt"]);
    platform = roles.role("plat");
    scheduler = roles.role("sched");
    runtime = roles.role("rt");
    database = await roles.createDatabase(platform);
    // A scheduler owner that may create schemas but owns none of the platform's tables.
    await roles.admin(`grant create on database ${database} to ${pg.escapeIdentifier(scheduler)}`);
    platformPool = createPool(roles.url(platform, database), { max: 4 });
    await platformPool.query(PLATFORM_SCHEMA);
  });
  after(async () => {
    await handle?.stop().catch(() => {});
    await platformPool?.end().catch(() => {});
    await roles?.drop();
  });

  it("refuses, before applying anything, a migrating role that does not own the tables, and a table lacking a column the jobs read", async () => {
    const result = await migrateAs(scheduler, "--runtime-role", runtime);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /the platform's existing tables cannot be adopted/);
    assert.match(result.stderr, new RegExp(`tables public\\.users, public\\.user_sessions, .*public\\.services are owned by role '${platform}', which '${scheduler}' \\(running migrate\\) is not`));
    assert.match(result.stderr, /table public\.logs has no column user_id, which the scheduler's jobs read/);
    assert.match(result.stderr, new RegExp(`fix: run migrate as '${platform}' \\(the platform's owner\\), or make the migrating role a member: grant ${platform} to ${scheduler}; add the missing columns`));
    const { rows } = await platformPool.query("select count(*)::int as n from pg_namespace where nspname in ('scheduler', 'graphile_worker')");
    assert.equal(rows[0].n, 0, "nothing was applied");
  });

  it("adopts the tables when their owner migrates: adds indexes and triggers, says so, and alters no column of the platform's", async () => {
    await platformPool.query("alter table logs add column user_id text"); // the platform's own migration
    const before = (await platformPool.query(PLATFORM_DEFINITIONS)).rows.map((row) => row.line as string);

    const result = await migrateAs(platform, "--runtime-role", runtime);
    assert.equal(result.code, 0, result.stderr);
    const out = result.stdout;
    assert.match(out, new RegExp(`adopted public\\.users \\(owner ${platform}\\): added trigger scheduler_record_deleted_users, trigger scheduler_record_renamed_user, trigger scheduler_request_orphaned_logs_scan`));
    assert.match(out, /adopted public\.user_sessions \(owner [^)]+\): added index user_sessions_open_idle_idx, index user_sessions_started_at_idx/);
    assert.match(out, /adopted public\.task_messages \(owner [^)]+\): added index task_messages_context_id_idx/);
    assert.match(out, /adopted public\.logs \(owner [^)]+\): added index logs_timestamp_idx, index logs_user_id_idx/);
    assert.match(out, /adopted public\.banned_ips \(owner [^)]+\): added index banned_ips_expires_at_idx, trigger scheduler_remember_inserted_bans, trigger scheduler_remember_updated_bans/);
    assert.match(out, /adopted public\.services \(owner [^)]+\): added column command, column args, .*trigger services_spec_changed/);
    assert.match(out, new RegExp(`granted runtime role: ${runtime}`));

    const after = (await platformPool.query(PLATFORM_DEFINITIONS)).rows.map((row) => row.line as string);
    const added = after.filter((line) => !before.includes(line));
    assert.deepEqual(before.filter((line) => !after.includes(line)), [], "no column or constraint of the platform's changed");
    assert.ok(added.every((line) => line.startsWith("services.")), `only services gained columns: ${added.join("; ")}`);
  });

  it("runs the jobs as the runtime role on the adopted tables, with the platform's foreign keys in force", async () => {
    await platformPool.query(`
      insert into users (id, email) values ('kept', 'k@example.test'), ('gone', 'g@example.test');
      insert into user_contexts (context_id, user_id, created_at) values ('empty', 'kept', now() - interval '3 hours'), ('used', 'kept', now() - interval '3 hours'), ('of-gone', 'gone', now() - interval '3 hours');
      insert into task_messages (context_id, content) values ('used', 'hi'), ('of-gone', 'bye');
      insert into logs ("timestamp", user_id, message) values (now() - interval '1 day', 'kept', 'stays'), (now() - interval '1 day', 'gone', 'orphaned'), (now() - interval '90 days', 'kept', 'old');
      insert into user_sessions (session_id, user_id, last_activity_at) values ('idle', 'kept', now() - interval '2 hours');
    `);
    // The platform deletes a user: its contexts and messages cascade, its logs become orphans.
    await platformPool.query("delete from users where id = 'gone'");

    handle = await startScheduler({ connectionString: roles.url(runtime, database), bootstrapJobs: [], logger: testLogger, concurrency: 2, shutdownGraceMs: 2000, services: false });
    for (const job of ["cleanup_inactive_sessions", "cleanup_empty_contexts", "database_cleanup", "malicious_ip_blacklist", "behavioral_analysis"]) {
      const { run } = await handle.runJob(job, {}, { wait: true, timeoutMs: 30_000 });
      assert.equal(run?.status, "success", `${job}: ${run?.error}`);
    }
    const q = async (sql: string) => (await platformPool.query(sql)).rows;
    assert.deepEqual(await q("select context_id from user_contexts order by 1"), [{ context_id: "used" }]);
    assert.deepEqual(await q("select message from logs order by 1"), [{ message: "stays" }]);
    assert.deepEqual(await q("select session_id from user_sessions where ended_at is not null"), [{ session_id: "idle" }]);
  });
});
