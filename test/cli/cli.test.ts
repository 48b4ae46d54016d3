import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { cleanupInactiveSessions } from "../../src/platform/jobs/cleanup_inactive_sessions/index.ts";
import type { SchedulerHandle } from "../../src/engine/runner/options.ts";
import { startScheduler } from "../../src/scheduler.ts";
import { runCliProcess } from "../helpers/cli.ts";
import { testLogger, useTestDatabase } from "../helpers/db.ts";

const db = useTestDatabase();
let node: SchedulerHandle;
const cli = (args: string[], env: Record<string, string> = {}) => runCliProcess(args, { DATABASE_URL: db.connectionString, ...env });

describe("CLI", () => {
  // Suite hooks, not file-level ones: those would run beside useTestDatabase's.
  before(async () => {
    node = await startScheduler({
      connectionString: db.connectionString,
      taskDirectory: null,
      jobs: [cleanupInactiveSessions],
      crontab: "# Ends idle sessions.\n*/10 * * * * cleanup_inactive_sessions",
      logger: testLogger,
      bootstrapJobs: [],
    });
  });
  after(async () => {
    await node?.stop();
  });

  it("prints help and exits 0; an unknown command exits 2", async () => {
    const help = await cli(["--help"]);
    assert.equal(help.code, 0);
    for (const command of ["start", "status", "history", "run", "pause", "resume", "migrate"]) assert.match(help.stdout, new RegExp(`\\n  ${command} `));
    const unknown = await cli(["frobnicate"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
    const badOption = await cli(["status", "--bogus"]);
    assert.equal(badOption.code, 2);
    assert.match(badOption.stderr, /unknown option '--bogus' for 'status' \(its options: --json\)/);
    // An argument meant for psql: where it goes, in quotes that balance.
    const psqlOption = await cli(["db", "psql", "-c", "select 1"]);
    assert.equal(psqlOption.code, 2);
    assert.match(psqlOption.stderr, /unknown option '-c' for 'db psql' \(it takes no options\); an argument for another program goes after --, e\.g\. systemprompt-scheduler db psql -- -c …/);
  });

  it("names every bad configuration key and exits 2", async () => {
    const result = await cli(["status"], { SCHEDULER_CONCURRENCY: "lots", LOG_LEVEL: "loud", DATABASE_URL: "mysql://x" });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /SCHEDULER_CONCURRENCY="lots"/);
    assert.match(result.stderr, /LOG_LEVEL="loud"/);
    assert.match(result.stderr, /DATABASE_URL="mysql:\/\/x": unknown scheme "mysql:" \(expected postgres:\/\/ or postgresql:\/\/\); e\.g\. postgres:\/\/user:password@host1:5432,host2:5432\/database/);
  });

  it("fails clearly, naming host and port, when the database is unreachable", async () => {
    const result = await cli(["status"], { DATABASE_URL: "postgres://postgres@127.0.0.1:1/nowhere" });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /cannot connect to PostgreSQL at 127\.0\.0\.1:1\/nowhere/);
    assert.ok(result.ms < 10_000, `gave up after ${result.ms} ms, not within 10 s`);
  });

  it("migrate reports an up-to-date schema", async () => {
    const result = await cli(["migrate"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /up to date/);
  });

  it("run --wait exits with the job's outcome; bad payloads and names exit 2", async () => {
    const ok = await cli(["run", "cleanup_inactive_sessions", "--payload", '{"enforce": false}', "--wait", "--json"]);
    assert.equal(ok.code, 0, ok.stderr);
    const run = JSON.parse(ok.stdout);
    assert.equal(run.status, "success");
    assert.match(run.message, /dry run/);

    const bad = await cli(["run", "cleanup_inactive_sessions", "--payload", '{"inactiveHours": "x"}']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /field 'inactiveHours'/);
    const notJson = await cli(["run", "cleanup_inactive_sessions", "--payload", "{nope"]);
    assert.equal(notJson.code, 2);
    assert.match(notJson.stderr, /--payload is not valid JSON/);
    const unknown = await cli(["run", "no_such_job"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no job or crontab entry named 'no_such_job'/);
  });

  it("pause and resume show in status, and a paused job is not run", async () => {
    assert.match((await cli(["pause", "cleanup_inactive_sessions", "--reason", "deploy"])).stdout, /paused cleanup_inactive_sessions/);
    const status = JSON.parse((await cli(["status", "--json"])).stdout);
    const job = status.jobs.find((row: { job_name: string }) => row.job_name === "cleanup_inactive_sessions");
    assert.equal(job.enabled, false);
    assert.equal(job.next_run, null);
    assert.ok(status.liveNodes.some((row: { node_id: string }) => row.node_id === node.nodeId));
    const refused = await cli(["run", "cleanup_inactive_sessions"]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /is paused/);
    assert.match((await cli(["resume", "cleanup_inactive_sessions"])).stdout, /resumed/);
    const table = await cli(["status"]);
    // TZ: the zone the schedule is read in (SCHEDULER_TIMEZONE, UTC by default, for a line without ?tz=)
    assert.match(table.stdout, /cleanup_inactive_sessions\s+\*\/10 \* \* \* \*\s+UTC\s+yes/);
  });

  it("commands that take arguments accept them through the real CLI, and refuse extra ones", async () => {
    const added = await cli(["services", "add", "web", "--command", "sleep 100", "--port", "18081", "--host", "elsewhere", "--disabled", "--", "--extra-arg"]);
    assert.equal(added.code, 0, added.stderr);
    assert.equal((await cli(["services", "enable", "web"])).code, 0);
    const extra = await cli(["services", "disable", "web", "also"]);
    assert.equal(extra.code, 2);
    assert.match(extra.stderr, /unexpected argument\(s\) 'also'/);
    assert.equal((await cli(["services", "disable", "web"])).code, 0);
    const banned = await cli(["ban", "203.0.113.9", "--duration", "1h"]);
    assert.equal(banned.code, 0, banned.stderr);
    assert.equal((await cli(["unban", "203.0.113.9"])).code, 0);
  });

  it("history lists runs, filtered by job, as a table and as JSON", async () => {
    const json = JSON.parse((await cli(["history", "cleanup_inactive_sessions", "--limit", "5", "--json"])).stdout);
    assert.ok(json.length >= 1);
    assert.ok(json.every((row: { task: string }) => row.task === "cleanup_inactive_sessions"));
    const table = await cli(["history", "--limit", "1"]);
    assert.match(table.stdout, /STARTED\s+JOB/);
    const badLimit = await cli(["history", "--limit", "0"]);
    assert.equal(badLimit.code, 2);
  });
});
