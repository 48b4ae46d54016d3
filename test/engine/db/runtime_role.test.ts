import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { z } from "zod";
import { defineJob } from "../../../src/engine/jobs/define.ts";
import { createPool, type Pool } from "../../../src/engine/db/pool.ts";
import { rescueDeadNodes } from "../../../src/engine/cluster/rescue.ts";
import { releaseLostJobs } from "../../../src/engine/cluster/lost-locks.ts";
import { pruneRuns } from "../../../src/engine/history/runs.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import type { SchedulerPack } from "../../../src/engine/pack.ts";
import { migrate, startScheduler } from "../../../src/scheduler.ts";
import { runCliProcess } from "../../helpers/cli.ts";
import { testLogger } from "../../helpers/db.ts";
import { createTestRoles, failureCode, rightsOf, type TestRoles } from "../../helpers/roles.ts";
import { eventually } from "../../helpers/wait.ts";

// The engine alone (SCHEDULER_PLATFORM=false) with two roles: an owner that migrates and a
// runtime role with only the grants of sql/grants/engine.sql. test/platform/runtime_role.test.ts
// does the same with the platform's jobs.

const here = path.dirname(fileURLToPath(import.meta.url));
const upgradePack: SchedulerPack = {
  name: "upgrade-probe",
  migrations: path.join(here, "fixtures", "upgrade", "migrations"),
  grants: path.join(here, "fixtures", "upgrade", "grants.sql"),
};

const probeJob = defineJob({
  name: "probe_job",
  description: "does nothing, as a runtime role",
  payload: { tag: z.string().default("") },
  async run({ db, payload }) {
    const { rows } = await db.query<{ who: string }>("select current_user as who");
    return { itemsProcessed: 1, itemsFailed: 0, message: `ran as ${rows[0]!.who} ${payload.tag}` };
  },
});

let roles: TestRoles & { role(label: string): string };
let database: string;
let owner: string;
let runtime: string;
let printed: string;
let ownerPool: Pool;
let runtimePool: Pool;
const handles: SchedulerHandle[] = [];

const engineEnv = (role: string) => ({ DATABASE_URL: roles.url(role, database), SCHEDULER_PLATFORM: "false" });

/** The PostgreSQL error code a statement run as the runtime role fails with (null: it worked). */
const failureOf = (sql: string) => failureCode(runtimePool, sql);

describe("the engine with an owner and a runtime role", () => {
  before(async () => {
    roles = await createTestRoles(["own", "rt", "dba"]);
    owner = roles.role("own");
    runtime = roles.role("rt");
    printed = roles.role("dba");
    database = await roles.createDatabase(owner);
    ownerPool = createPool(roles.url(owner, database), { max: 4 });
    runtimePool = createPool(roles.url(runtime, database), { max: 4 });
  });
  after(async () => {
    await Promise.all(handles.map((handle) => handle.stop().catch(() => {})));
    await ownerPool?.end().catch(() => {});
    await runtimePool?.end().catch(() => {});
    await roles?.drop();
  });

  it("a node started as the runtime role on an un-migrated database exits 2 with the owner's command", async () => {
    const result = await runCliProcess(["start"], engineEnv(runtime));
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /the database schema is not current \(graphile-worker's schema is missing/);
    assert.match(result.stderr, new RegExp(`fix: run as the owner \\(the platform's migration role\\): systemprompt-scheduler migrate --runtime-role ${runtime}\\n`));
    await assert.rejects(
      () => startScheduler({ platform: false, connectionString: roles.url(runtime, database), taskDirectory: null, crontab: "", jobs: [probeJob], logger: testLogger }),
      (error: { code?: string; exitCode?: number }) => error.code === "schema_not_current" && error.exitCode === 2,
    );
    const { rows } = await roles.admin("select count(*)::int as n from pg_namespace where nspname in ('scheduler', 'graphile_worker')", [], database);
    assert.equal(rows[0].n, 0, "the runtime role created nothing");
  });

  it("migrate --runtime-role, run by the owner, applies everything and grants row rights only", async () => {
    const result = await runCliProcess(["migrate", "--runtime-role", runtime], engineEnv(owner));
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /applied: sql\/engine\/002_scheduler_schema\.sql/);
    assert.doesNotMatch(result.stdout, /sql\/platform/, "the engine alone");
    assert.match(result.stdout, new RegExp(`granted runtime role: ${runtime}`));

    assert.equal(await failureOf("create table public.intruder (id int)"), "42501");
    assert.equal(await failureOf("create table scheduler.intruder (id int)"), "42501");
    assert.equal(await failureOf("create table graphile_worker.intruder (id int)"), "42501");
    assert.equal(await failureOf("create schema intruder"), "42501");
    assert.equal(await failureOf("alter table scheduler.job_runs add column intruder int"), "42501");
    assert.equal(await failureOf("drop table scheduler.job_runs"), "42501");
    assert.equal(await failureOf("drop table graphile_worker._private_jobs"), "42501");
    assert.equal(await failureOf("truncate scheduler.job_runs"), "42501");
    assert.equal(await failureOf("create index intruder on scheduler.job_runs (task)"), "42501");
    assert.equal(await failureOf("select * from scheduler.runtime_roles"), "42501", "the remembered roles are the owner's business");
    assert.equal(await failureOf("select count(*) from scheduler.job_runs"), null);

    const rights = await rightsOf(runtimePool, runtime);
    assert.ok(!rights.some((line) => /: (TRUNCATE|REFERENCES|TRIGGER|CREATE)$|^owns /.test(line)), rights.join("\n"));
  });

  it("every table and sequence of the engine's schemas is granted, except the owner's list of runtime roles and the audit trail's ids", async () => {
    const { rows } = await ownerPool.query<{ object: string }>(
      `select c.oid::regclass::text as object from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname in ('scheduler', 'graphile_worker') and c.relkind in ('r', 'v', 'S')
         and not case when c.relkind = 'S' then has_sequence_privilege($1, c.oid, 'usage') else has_table_privilege($1, c.oid, 'select') end
       order by 1`,
      [runtime],
    );
    // The audit trail is written only through scheduler.audit_record (which numbers its rows).
    assert.deepEqual(rows.map((row) => row.object), ["scheduler.audit_id_seq", "scheduler.runtime_roles"]);
  });

  it("is idempotent, and --print-grants applied by a superuser gives another role exactly the same rights", async () => {
    const before = await rightsOf(ownerPool, runtime);
    const again = await runCliProcess(["migrate", "--runtime-role", runtime], engineEnv(owner));
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /database schema is up to date/);
    assert.deepEqual(await rightsOf(ownerPool, runtime), before);

    const print = await runCliProcess(["migrate", "--print-grants", printed], { ...engineEnv(owner), DATABASE_URL: "postgres://nobody@127.0.0.1:1/none" });
    assert.equal(print.code, 0, print.stderr);
    assert.match(print.stdout, new RegExp(`grant usage on schema scheduler to "${printed}";`));
    assert.doesNotMatch(print.stdout, /runtime_role"/, "every placeholder substituted");
    await roles.admin(print.stdout, [], database);
    const normalise = (lines: string[], role: string) => lines.map((line) => line.replaceAll(role, "ROLE"));
    assert.deepEqual(normalise(await rightsOf(ownerPool, printed), printed), normalise(before, runtime));
  });

  it("quotes a role name as an identifier: a name that is SQL does nothing but name a role", async () => {
    const print = await runCliProcess(["migrate", "--print-grants", `x"; drop table scheduler.job_runs; --`], engineEnv(owner));
    assert.equal(print.code, 0, print.stderr);
    assert.match(print.stdout, /to "x""; drop table scheduler\.job_runs; --";/);
    const asRuntime = await runCliProcess(["migrate"], engineEnv(runtime));
    assert.equal(asRuntime.code, 1);
    assert.match(asRuntime.stderr, new RegExp(`role '${runtime}' may not migrate this database: .*\n  fix: run migrate as the owner of the scheduler's schema`));
    const missing = await runCliProcess(["migrate", "--runtime-role", "no_such_role_sps"], engineEnv(owner));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /role 'no_such_role_sps' does not exist/);
  });

  it("a node started as the runtime role runs jobs, pauses, prunes history and rescues a dead node, with no DDL", async () => {
    const handle = await startScheduler({
      platform: false,
      connectionString: roles.url(runtime, database),
      taskDirectory: null,
      jobs: [probeJob],
      crontab: "0 3 * * * probe_job ?id=nightly_probe",
      bootstrapJobs: [],
      logger: testLogger,
      concurrency: 2,
      shutdownGraceMs: 2000,
      http: "127.0.0.1:0",
      metricsCacheMs: 0,
    });
    handles.push(handle);
    const { run } = await handle.runJob("probe_job", { tag: "x" }, { wait: true, timeoutMs: 20_000 });
    assert.equal(run?.status, "success");
    assert.match(run?.message ?? "", new RegExp(`ran as ${runtime} x`));
    // The run's totals, kept by job_runs' triggers as the role that wrote it.
    const { rows: [totals] } = await ownerPool.query("select runs, successes, last_success_at is not null as has_success from scheduler.job_stats where job_name = 'probe_job'");
    assert.deepEqual([totals.runs, totals.successes, totals.has_success], ["1", "1", true]);
    // /metrics recomputes the cluster's shared gauges as the runtime role (its cache row, its advisory lock).
    const metrics = await fetch(`http://${handle.httpAddress}/metrics`).then((response) => response.text());
    assert.match(metrics, /scheduler_schedule_paused\{schedule="nightly_probe"\} 0/);
    const { rows: [cache] } = await ownerPool.query("select computed_at > now() - interval '1 minute' as fresh, json_array_length(body->'schedules') as n from scheduler.cluster_gauges_cache");
    assert.deepEqual([cache.fresh, cache.n], [true, 1]);

    // pause, resume, status, history, nodes: the CLI as the runtime role
    const cli = (...args: string[]) => runCliProcess(args, engineEnv(runtime));
    const paused = await cli("pause", "nightly_probe", "--reason", "least privilege");
    assert.equal(paused.code, 0, paused.stderr);
    const status = await cli("status", "--json");
    assert.equal(status.code, 0, status.stderr);
    const job = (JSON.parse(status.stdout) as { jobs: { job_name: string; enabled: boolean; pause_reason: string }[] }).jobs.find((row) => row.job_name === "nightly_probe");
    assert.deepEqual([job?.enabled, job?.pause_reason], [false, "least privilege"]);
    assert.equal((await cli("resume", "nightly_probe")).code, 0);
    for (const args of [["history", "probe_job"], ["nodes", "--all"], ["run", "probe_job", "--wait"]]) {
      const result = await cli(...args);
      assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
    }

    // history pruning: runs older than the retention go (job_stats keeps the lifetime totals)
    await ownerPool.query("insert into scheduler.job_runs (job_name, task, status, started_at, finished_at) values ('probe_job', 'probe_job', 'success', now() - interval '40 days', now() - interval '40 days')");
    assert.equal(await pruneRuns(runtimePool, 30), 1);

    // rescue of a dead node whose session is still open: its run is abandoned, its session ended
    const orphan = new pg.Client({ connectionString: roles.url(runtime, database), application_name: "sps-node dead-1" });
    orphan.on("error", () => {});
    await orphan.connect();
    await ownerPool.query(
      `insert into scheduler.nodes (node_id, host, pid, version, last_heartbeat_at, application_name)
       values ('dead-1', 'gone', 1, 'test', now() - interval '1 hour', 'sps-node dead-1')`,
    );
    await ownerPool.query("insert into scheduler.job_runs (job_name, task, node_id) values ('probe_job', 'probe_job', 'dead-1')");
    // The node's own rescue loop (also the runtime role) may get there first once it has been
    // connected for SCHEDULER_NODE_DEAD_AFTER_MS (30 s, which a loaded machine can reach here):
    // the rescue is read back from scheduler.rescues, whichever of the two did it.
    const rescues = await eventually(async () => {
      await rescueDeadNodes(runtimePool, handle.nodeId, 1000, 1000);
      const { rows: found } = await ownerPool.query<{ node_id: string; runs: number; sessions_ended: number; rescued_by: string }>(
        "select node_id, cardinality(runs_abandoned) as runs, sessions_ended, rescued_by from scheduler.rescues where node_id = 'dead-1'",
      );
      return found.length > 0 ? found : null;
    }, { timeoutMs: 5000, what: "the dead node to be rescued" });
    assert.deepEqual(rescues.map((rescue) => [rescue.node_id, rescue.runs, rescue.sessions_ended, rescue.rescued_by]), [["dead-1", 1, 1, handle.nodeId]]);
    await orphan.end().catch(() => {});

    // a job its own pool locked but never ran, released (sql/engine/023); a task no node runs
    const { rows: [lost] } = await ownerPool.query<{ id: string }>("select (graphile_worker.add_job('lost_probe', '{}', queue_name => 'lost_probe_q')).id");
    await ownerPool.query("update graphile_worker._private_jobs set locked_by = 'pool-lost', locked_at = now() - interval '1 hour', attempts = 1 where id = $1", [lost!.id]);
    assert.deepEqual(await releaseLostJobs(runtimePool, "pool-lost", [], 1000), { released: [lost!.id], suspects: 0 });
    await ownerPool.query("delete from graphile_worker._private_jobs where id = $1", [lost!.id]);

    // No DDL from the node: the schema's objects are all the owner's.
    const { rows } = await ownerPool.query("select count(*)::int as n from pg_class where relowner = (select oid from pg_roles where rolname = $1)", [runtime]);
    assert.equal(rows[0].n, 0);
    await handle.stop();
  });

  it("a later migrate (an upgrade) grants the remembered runtime roles the new objects", async () => {
    assert.equal(await failureOf("select 1"), null);
    const result = await migrate(ownerPool, { platform: false, packs: [upgradePack], logger: testLogger });
    // The repeatable view runs again after any numbered file (which may have dropped it)...
    assert.deepEqual(result.applied, ["test/engine/db/fixtures/upgrade/migrations/901_upgrade_probe.sql", "sql/engine/repeatable/scheduled_jobs.sql"]);
    // ...and the runtime role still reads it.
    assert.equal(await failureOf("select late, missed_count from scheduled_jobs"), null);
    assert.deepEqual(result.granted, [runtime], "granted without being asked again (the DBA's role was never remembered)");
    const { rows } = await runtimePool.query("select id from scheduler.upgrade_probe");
    assert.deepEqual(rows, [{ id: 1 }]);
    assert.equal(await failureOf("select id from scheduler.upgrade_probe"), null);
  });
});
