import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { projectRoot } from "../../../src/engine/db/sql-file.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { startScheduler } from "../../../src/scheduler.ts";
import { enqueueRun, publishedEntry, requestForEntry } from "../../../src/engine/runner/run-request.ts";
import { runCliProcess } from "../../helpers/cli.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

// A crontab entry is a unit of its own (run by its id it is that entry: payload, queue, job
// key, attempts, recorded under its id); pauses of its task show in scheduled_jobs; task files
// added to a running node's folder are picked up live; plain task files are recorded too.

const db = useTestDatabase();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-entries-"));
const tasksDir = path.join(dir, "tasks");
const crontabPath = path.join(dir, "crontab");
let node: SchedulerHandle;

const defineJobModule = path.join(projectRoot, "src/engine/jobs/define.ts");
const cli = (args: string[], env: Record<string, string> = {}) =>
  runCliProcess(args, { DATABASE_URL: db.connectionString, SCHEDULER_TASKS_DIR: tasksDir, SCHEDULER_CRONTAB: crontabPath, ...env });

const CRONTAB = `# A dry run of the cleanup, every Sunday.
0 4 * * 0 database_cleanup ?id=weekly_preview {enforce: false, fullOrphanScan: false}
0 3 * * * database_cleanup
0 5 * * * plain_hello
`;

async function oldLogs(): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>("select count(*)::int as n from logs where \"timestamp\" < now() - interval '30 days'");
  return rows[0]!.n;
}

describe("crontab entries, pauses, live task files, plain tasks", () => {
  before(async () => {
    fs.mkdirSync(tasksDir);
    fs.writeFileSync(path.join(tasksDir, "database_cleanup.ts"), `export { default } from ${JSON.stringify(path.join(projectRoot, "tasks/database_cleanup.ts"))};\n`);
    // A plain graphile-worker task: no defineJob, no schema.
    fs.writeFileSync(path.join(tasksDir, "plain_hello.ts"), `export default async (payload, helpers) => {\n  if (payload.fail) throw new Error("plain task failed on purpose");\n  await helpers.query("select 1");\n};\n`);
    fs.writeFileSync(crontabPath, CRONTAB);
    await db.pool.query(`insert into logs (id, "timestamp") select 'old-' || i, now() - interval '40 days' from generate_series(1, 5) i`);
    node = await startScheduler({
      connectionString: db.connectionString,
      taskDirectory: tasksDir,
      crontabPath,
      crontabPollMs: 200,
      bootstrapJobs: [],
      services: false,
      logger: testLogger,
    });
  });
  after(async () => {
    await node?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("`run ENTRY --wait` runs that entry: its payload (a dry run deletes nothing), recorded under its id", async () => {
    const result = await cli(["run", "weekly_preview", "--wait", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const run = JSON.parse(result.stdout);
    assert.equal(run.job_name, "weekly_preview");
    assert.equal(run.task, "database_cleanup");
    assert.equal(run.status, "success");
    assert.equal(typeof run.job_id, "number");
    assert.equal(run.id, undefined, "one id field: job_id");
    assert.equal(typeof run.items_processed, "number");
    assert.equal(await oldLogs(), 5, "the dry-run entry deleted nothing");
    const { rows } = await db.pool.query("select job_name, task, dry_run, payload from scheduler.job_runs where job_id = $1", [run.job_id]);
    assert.deepEqual(rows.map((row) => [row.job_name, row.task, row.dry_run]), [["weekly_preview", "database_cleanup", true]]);
  });

  it("--payload fields are merged over the entry's payload", async () => {
    const result = await cli(["run", "weekly_preview", "--payload", '{"logRetentionDays": 10}', "--wait", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const { rows } = await db.pool.query("select dry_run, payload from scheduler.job_runs where job_id = $1", [JSON.parse(result.stdout).job_id]);
    assert.equal(rows[0].dry_run, true, "enforce: false still comes from the entry");
    assert.equal(rows[0].payload.logRetentionDays, 10);
    assert.equal(rows[0].payload.fullOrphanScan, false);
    assert.equal(await oldLogs(), 5);
    const bad = await cli(["run", "weekly_preview", "--payload", '{"logRetentionDays": "ten"}']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /field 'logRetentionDays'/);
  });

  it("the library's runJob does the same", async () => {
    const queued = await node.runJob("weekly_preview", {}, { wait: true });
    assert.equal(queued.jobName, "weekly_preview");
    assert.equal(queued.run?.status, "success");
    assert.equal(await oldLogs(), 5);
    const { rows } = await db.pool.query("select job_name, dry_run from scheduler.job_runs where job_id = $1", [queued.jobId]);
    assert.deepEqual(rows[0], { job_name: "weekly_preview", dry_run: true });
  });

  it("an entry's run is queued with the entry's queue, job key and attempts", async () => {
    const entry = await publishedEntry(db.pool, "weekly_preview");
    assert.ok(entry);
    // Queued in a transaction that is rolled back, so no node runs it meanwhile.
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      const { jobId } = await enqueueRun(client, requestForEntry(entry, { logRetentionDays: 7 }));
      const { rows } = await client.query("select queue_name, key, max_attempts, payload from graphile_worker._private_jobs j left join graphile_worker._private_job_queues q on q.id = j.job_queue_id where j.id = $1", [jobId]);
      assert.deepEqual(
        { queue: rows[0].queue_name, key: rows[0].key, maxAttempts: rows[0].max_attempts },
        { queue: "database_cleanup", key: "cron:weekly_preview", maxAttempts: 3 },
      );
      assert.deepEqual(rows[0].payload, { enforce: false, fullOrphanScan: false, logRetentionDays: 7, _schedule: "weekly_preview" });
    } finally {
      await client.query("rollback");
      client.release();
    }
  });

  it("a task-level pause disables every entry of the task in scheduled_jobs and status, with who, when and why", async () => {
    const paused = await cli(["pause", "database_cleanup", "--reason", "migrating the logs table"]);
    assert.equal(paused.code, 0, paused.stderr);
    const { rows } = await db.pool.query("select job_name, enabled, next_run, paused_as, paused_by, pause_reason, paused_at from scheduled_jobs where task = 'database_cleanup' order by job_name");
    assert.equal(rows.length, 2);
    for (const row of rows) {
      assert.equal(row.enabled, false, `${row.job_name} is not enabled`);
      assert.equal(row.next_run, null);
      assert.equal(row.paused_as, "database_cleanup");
      assert.equal(row.pause_reason, "migrating the logs table");
      assert.match(row.paused_by, /@/);
      assert.ok(row.paused_at instanceof Date);
    }
    const status = JSON.parse((await cli(["status", "--json"])).stdout);
    const preview = status.jobs.find((job: { job_name: string }) => job.job_name === "weekly_preview");
    assert.equal(preview.enabled, false);
    assert.equal(preview.pause_reason, "migrating the logs table");
    assert.equal(typeof preview.run_count, "number");
    const table = await cli(["status"]);
    assert.match(table.stdout, /weekly_preview: paused through its task 'database_cleanup' by \S+@\S+ at \d{4}-\d\d-\d\dT[\d:]+Z: migrating the logs table/);
    const refused = await cli(["run", "weekly_preview"]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /'database_cleanup' is paused/);
    assert.equal((await cli(["resume", "database_cleanup"])).code, 0);
    const resumed = await db.pool.query("select bool_and(enabled) as enabled, bool_and(next_run is not null) as scheduled from scheduled_jobs where task = 'database_cleanup'");
    assert.deepEqual(resumed.rows[0], { enabled: true, scheduled: true });
  });

  it("a plain task file's runs are recorded, so run --wait returns at once with the outcome", async () => {
    const ok = await cli(["run", "plain_hello", "--wait", "--timeout", "20"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /plain_hello: success/);
    assert.ok(ok.ms < 15_000, `took ${ok.ms} ms`);
    const failed = await cli(["run", "plain_hello", "--payload", '{"fail": true}', "--wait", "--timeout", "20"]);
    assert.equal(failed.code, 1);
    assert.match(failed.stdout, /plain task failed on purpose/);
    const history = JSON.parse((await cli(["history", "plain_hello", "--json"])).stdout);
    assert.deepEqual(history.map((row: { status: string }) => row.status).sort(), ["failed", "success"]);
  });

  it("a task file added to the running node's folder is loaded live with its crontab line", async () => {
    fs.writeFileSync(
      path.join(tasksDir, "purge_audit_exports.ts"),
      `import { defineJob } from ${JSON.stringify(defineJobModule)};
export default defineJob({
  name: "purge_audit_exports",
  description: "Purges audit exports",
  payload: {},
  async run({ db }) {
    await db.query("select 1");
    return { itemsProcessed: 0, itemsFailed: 0, message: "purged" };
  },
}).task;
`,
    );
    fs.writeFileSync(crontabPath, `${CRONTAB}# Purges audit exports.\n*/5 * * * * purge_audit_exports\n`);
    await eventually(async () => node.schedules().some((entry) => entry.identifier === "purge_audit_exports"), { timeoutMs: 5000, what: "the new entry to be scheduled" });
    const { rows } = await db.pool.query("select tasks from scheduler.nodes where node_id = $1", [node.nodeId]);
    assert.ok(rows[0].tasks.includes("purge_audit_exports"), "the node published its new task");
    const run = await cli(["run", "purge_audit_exports", "--wait", "--timeout", "20"]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /purge_audit_exports: success .* purged/);
  });

  it("refuses to queue a task that no live node can run", async () => {
    const cliTasks = path.join(dir, "cli-tasks");
    fs.mkdirSync(cliTasks);
    fs.writeFileSync(path.join(cliTasks, "only_here.ts"), "export default async () => {};\n");
    const result = await cli(["run", "only_here", "--wait"], { SCHEDULER_TASKS_DIR: cliTasks });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /no live node can run task 'only_here'/);
    const count = await db.pool.query("select count(*)::int as n from graphile_worker.jobs where task_identifier = 'only_here'");
    assert.equal(count.rows[0].n, 0, "nothing was queued");
  });

  it("refuses unknown names in history, and stray arguments", async () => {
    const history = await cli(["history", "no_such_job"]);
    assert.equal(history.code, 2);
    assert.match(history.stderr, /no job or crontab entry named 'no_such_job'/);
    const stray = await cli(["status", "extra"]);
    assert.equal(stray.code, 2);
    assert.match(stray.stderr, /unexpected argument\(s\) 'extra'/);
    const strayRun = await cli(["run", "weekly_preview", "also_this"]);
    assert.equal(strayRun.code, 2);
    assert.match(strayRun.stderr, /unexpected argument\(s\) 'also_this'/);
  });
});
