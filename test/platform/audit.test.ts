import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { cliActor } from "../../src/engine/audit/actor.ts";
import { createPool, type Pool } from "../../src/engine/db/pool.ts";
import { runCliProcess } from "../helpers/cli.ts";
import { createTestRoles, failureCode, type TestRoles } from "../helpers/roles.ts";
import { freePort, killEverything, removeTempDirs, uniqueHost } from "./services/fixtures/harness.ts";

// The audit trail from the CLI, as real processes with three real roles: the owner migrates,
// the nodes' runtime role pauses, runs and bans, the admin role changes services. Each change
// writes exactly one row, under "OS user@host" and the role it connected as; nobody but the
// owner may change or remove a row. test/engine/audit/trail.test.ts covers the library, the
// dashboard and pruning.

let roles: TestRoles & { role(label: string): string };
let database: string;
let owner: string;
let runtime: string;
let admin: string;
let ownerPool: Pool;
let runtimePool: Pool;
let adminPool: Pool;
const host = uniqueHost("audit");
const me = cliActor();

const cli = (role: string, ...args: string[]) => runCliProcess(args, { DATABASE_URL: roles.url(role, database), SCHEDULER_HOST: host, SCHEDULER_RECONCILE_SERVICES: "false" });
async function ok(role: string, ...args: string[]): Promise<string> {
  const result = await cli(role, ...args);
  assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

interface Row { id: string; actor: string; db_role: string; action: string; target: string | null; detail: Record<string, unknown> }
const maxId = async () => (await ownerPool.query<{ id: string }>("select coalesce(max(id), 0) as id from scheduler.audit")).rows[0]!.id;
/** The rows `work` added; it must add exactly `count`. */
async function added(count: number, work: () => Promise<unknown>): Promise<Row[]> {
  const since = await maxId();
  await work();
  const { rows } = await ownerPool.query<Row>("select id, actor, db_role, action, target, detail from scheduler.audit where id > $1 order by id", [since]);
  assert.equal(rows.length, count, JSON.stringify(rows));
  return rows;
}
const brief = (row: Row) => [row.actor, row.db_role, row.action, row.target];

describe("the audit trail from the CLI, with an owner, a runtime role and an admin role", () => {
  before(async () => {
    roles = await createTestRoles(["own", "rt", "adm"]);
    [owner, runtime, admin] = (["own", "rt", "adm"] as const).map((label) => roles.role(label)) as [string, string, string];
    database = await roles.createDatabase(owner);
    [ownerPool, runtimePool, adminPool] = [owner, runtime, admin].map((role) => createPool(roles.url(role, database), { max: 2 })) as [Pool, Pool, Pool];
  });
  after(async () => {
    killEverything([host]);
    removeTempDirs();
    await Promise.all([ownerPool, runtimePool, adminPool].map((pool) => pool?.end().catch(() => {})));
    await roles?.drop();
  });

  it("migrate writes one row when it changed something (files applied, a role granted for the first time), none when not", async () => {
    const first = await cli(owner, "migrate", "--runtime-role", runtime);
    assert.equal(first.code, 0, first.stderr);
    const [migrated] = await ownerPool.query<Row>("select * from scheduler.audit").then((result) => result.rows);
    assert.deepEqual(brief(migrated!), [me, owner, "migrate", database]);
    const detail = migrated!.detail as { applied: string[]; runtime_roles: string[]; admin_roles: string[]; new_roles: string[] };
    assert.ok(detail.applied.includes("sql/engine/030_audit.sql") && detail.applied.includes("sql/platform/repeatable/manual_bans.sql"), detail.applied.join());
    assert.deepEqual([detail.runtime_roles, detail.admin_roles, detail.new_roles], [[runtime], [], [runtime]]);
    await added(0, () => ok(owner, "migrate", "--runtime-role", runtime));
    const [granted] = await added(1, () => ok(owner, "migrate", "--admin-role", admin));
    assert.deepEqual([granted!.detail.applied, granted!.detail.new_roles, granted!.detail.admin_roles], [[], [admin], [admin]]);
  });

  it("only the owner may change or remove a row: the runtime role reads and appends through the function, under its own role", async () => {
    await ownerPool.query("select scheduler.audit_record('someone', 'pause', 'probe')");
    for (const sql of [
      "insert into scheduler.audit (actor, action, target, db_role) values ('forger', 'pause', 'x', 'postgres')",
      "update scheduler.audit set actor = 'nobody'",
      "delete from scheduler.audit",
      "truncate scheduler.audit",
    ]) {
      assert.equal(await failureCode(runtimePool, sql), "42501", sql);
      assert.equal(await failureCode(adminPool, sql), "42501", `admin: ${sql}`);
    }
    assert.equal(await failureCode(runtimePool, "select count(*) from scheduler.audit"), null);
    assert.equal(await failureCode(adminPool, "select count(*) from scheduler.audit"), "42501", "the admin role writes its rows, and reads none");
    assert.equal(await failureCode(adminPool, "select scheduler.audit_prune(0)"), "42501");
    // What the runtime role records carries its own role, whatever actor it claims; a prune
    // may not remove the last day.
    const [forged] = await added(1, () => runtimePool.query("select scheduler.audit_record('postgres', 'pause', 'forged')"));
    assert.deepEqual(brief(forged!), ["postgres", runtime, "pause", "forged"]);
    assert.equal((await runtimePool.query("select scheduler.audit_prune(0) as n")).rows[0].n, 0);
    assert.equal((await ownerPool.query("select count(*)::int as n from scheduler.audit where target in ('probe', 'forged')")).rows[0].n, 2);
  });

  it("pause, resume, run, ban and unban as the runtime role write one row each; a change that changed nothing writes none", async () => {
    const [paused] = await added(1, () => ok(runtime, "pause", "database_cleanup", "--reason", "disk full"));
    assert.deepEqual([...brief(paused!), paused!.detail], [me, runtime, "pause", "database_cleanup", { reason: "disk full" }]);
    assert.equal((await ownerPool.query("select paused_by from scheduler.paused_jobs")).rows[0].paused_by, me, "the same actor as the pause");
    await added(0, () => ok(runtime, "pause", "database_cleanup"));
    const [resumed] = await added(1, () => ok(runtime, "resume", "database_cleanup"));
    assert.deepEqual(brief(resumed!), [me, runtime, "resume", "database_cleanup"]);
    await added(0, () => ok(runtime, "resume", "database_cleanup"));

    let queued: { job_id: number } = { job_id: 0 };
    const [run] = await added(1, async () => (queued = JSON.parse(await ok(runtime, "run", "database_cleanup", "--payload", '{"enforce": false}', "--json"))));
    assert.deepEqual([...brief(run!), run!.detail], [me, runtime, "run", "database_cleanup", { job_id: queued.job_id, task: "database_cleanup", payload: { enforce: false }, dry_run: true }]);
    await added(0, async () => assert.equal((await cli(runtime, "run", "database_cleanup", "--payload", '{"enforce": "no"}')).code, 2));

    const [banned] = await added(1, () => ok(runtime, "ban", "2001:DB8::7", "--reason", "scraping", "--duration", "2h"));
    assert.deepEqual(brief(banned!), [me, runtime, "ban", "2001:db8::7"]);
    assert.deepEqual([banned!.detail.outcome, banned!.detail.reason, banned!.detail.permanent, banned!.detail.source], ["created", "scraping", false, "manual"]);
    await added(0, () => ok(runtime, "ban", "2001:db8::7", "--duration", "1h"));
    const [permanent] = await added(1, () => ok(runtime, "ban", "2001:db8::7", "--permanent"));
    assert.equal(permanent!.detail.outcome, "made_permanent");
    await added(0, async () => assert.equal((await cli(runtime, "ban", "127.0.0.1")).code, 1, "allowlisted: refused"));
    const [unbanned] = await added(1, () => ok(runtime, "unban", "2001:db8:0::7", "--forget"));
    assert.deepEqual([...brief(unbanned!), unbanned!.detail], [me, runtime, "unban", "2001:db8::7", { lifted: true, forget: true, offences_forgotten: true }]);
    await added(0, () => ok(runtime, "unban", "2001:db8::7"));
  });

  it("services add, enable, disable and stop as the admin role write one row each; the environment's values stay out", async () => {
    const port = await freePort();
    const [add] = await added(1, () => ok(admin, "services", "add", "web", "--command", process.execPath, "--port", String(port), "--env", "API_KEY=s3cret", "--disabled", "--", "server.js"));
    assert.deepEqual(brief(add!), [me, admin, "services.add", "web"]);
    assert.deepEqual(add!.detail, { host, module: "agent", command: process.execPath, args: ["server.js"], cwd: null, env_keys: ["API_KEY"], port, desired_status: "disabled", replaced: false });
    assert.doesNotMatch(JSON.stringify(add!.detail), /s3cret/);
    await added(0, async () => assert.equal((await cli(admin, "services", "add", "web", "--command", process.execPath, "--port", String(port))).code, 2, "exists: nothing saved"));
    const [replaced] = await added(1, () => ok(admin, "services", "add", "web", "--command", process.execPath, "--port", String(port), "--disabled", "--replace"));
    assert.equal(replaced!.detail.replaced, true);
    const [enabled] = await added(1, () => ok(admin, "services", "enable", "web"));
    assert.deepEqual([...brief(enabled!), enabled!.detail], [me, admin, "services.enable", "web", { host, desired_status: "enabled", previous: "disabled" }]);
    const [disabled] = await added(1, () => ok(admin, "services", "disable", "web"));
    assert.deepEqual([...brief(disabled!), disabled!.detail.previous], [me, admin, "services.disable", "web", "enabled"]);
    await ok(admin, "services", "enable", "web");
    const [stopped] = await added(1, () => ok(admin, "services", "stop", "web", "--force"));
    assert.deepEqual([...brief(stopped!), stopped!.detail], [me, admin, "services.stop", "web", { host, desired_status: "disabled", previous: "enabled", force: true, grace_ms: 10_000 }]);
    await added(0, async () => assert.equal((await cli(admin, "services", "enable", "nothing-here")).code, 2));
    await added(0, async () => assert.equal((await cli(runtime, "services", "enable", "web")).code, 2, "the runtime role may not"));
  });

  it("SQL callers keep the old signatures, recorded under their database role", async () => {
    const [paused] = await added(1, () => ownerPool.query("select scheduler.pause_job('cleanup_empty_contexts')"));
    assert.deepEqual(brief(paused!), [owner, owner, "pause", "cleanup_empty_contexts"]);
    const [resumed] = await added(1, () => ownerPool.query("select scheduler.resume_job('cleanup_empty_contexts')"));
    assert.deepEqual(brief(resumed!), [owner, owner, "resume", "cleanup_empty_contexts"]);
    const [banned] = await added(1, () => runtimePool.query("select * from scheduler.ban_ip('198.51.100.23', 'by hand', interval '1 hour')"));
    assert.deepEqual(brief(banned!), [runtime, runtime, "ban", "198.51.100.23"]);
    const [unbanned] = await added(1, () => runtimePool.query("select scheduler.unban_ip('198.51.100.23')"));
    assert.deepEqual(brief(unbanned!), [runtime, runtime, "unban", "198.51.100.23"]);
  });

  it("audit lists the rows newest first, of one target when asked, as a table or as JSON with numbers as numbers", async () => {
    const table = await ok(runtime, "audit", "-n", "3");
    const lines = table.trimEnd().split("\n");
    assert.match(lines[0]!, /^AT\s+ACTOR\s+ROLE\s+ACTION\s+TARGET\s+DETAIL$/);
    assert.equal(lines.length, 5, table);
    assert.match(lines[2]!, new RegExp(`\\s${runtime}\\s+unban\\s+198\\.51\\.100\\.23\\s+forget=false lifted=true`));
    const json = JSON.parse(await ok(runtime, "audit", "database_cleanup", "--json")) as (Row & { id: number; at: string; client_addr: string | null })[];
    const expected = (await ownerPool.query<{ id: string; action: string }>("select id, action from scheduler.audit where target = 'database_cleanup' order by at desc, id desc")).rows;
    assert.deepEqual(json.map((row) => [row.id, row.action]), expected.map((row) => [Number(row.id), row.action]));
    assert.deepEqual(json.map((row) => row.action), ["run", "resume", "pause"]);
    assert.equal(typeof json[0]!.id, "number");
    assert.equal(typeof json[0]!.detail.job_id, "number");
    assert.deepEqual([json[0]!.actor, json[0]!.db_role, json[0]!.client_addr], [me, runtime, "127.0.0.1"]);
    assert.ok(!Number.isNaN(Date.parse(json[0]!.at)));
    assert.match(await ok(runtime, "audit", "nothing-by-this-name"), /^nothing recorded for 'nothing-by-this-name'$/m);
    const bad = await cli(runtime, "audit", "--limit", "0");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--limit must be a whole number from 1 to 10000, got '0'/);
  });
});
