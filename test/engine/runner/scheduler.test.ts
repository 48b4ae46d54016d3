import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { z } from "zod";
import { defineJob } from "../../../src/engine/jobs/define.ts";
import { cleanupInactiveSessions } from "../../../src/platform/jobs/cleanup_inactive_sessions/index.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { startScheduler, type SchedulerOptions } from "../../../src/scheduler.ts";
import { useTestDatabase, testLogger } from "../../helpers/db.ts";
import { eventually, sleep } from "../../helpers/wait.ts";

const db = useTestDatabase();

/** A job that sleeps in SQL, so it holds a worker and its connection like real work. */
const slowJob = defineJob({
  name: "slow_job",
  description: "sleeps for `ms` milliseconds in the database",
  payload: { ms: z.number().int().min(0).default(500), tag: z.string().default("") },
  timeoutMs: 5000,
  async run({ db: conn, payload }) {
    await conn.query("select pg_sleep($1::float8 / 1000)", [payload.ms]);
    return { itemsProcessed: 1, itemsFailed: 0, message: `slept ${payload.ms} ms ${payload.tag}` };
  },
});

const running: SchedulerHandle[] = [];

async function start(options: SchedulerOptions = {}): Promise<SchedulerHandle> {
  const handle = await startScheduler({
    connectionString: db.connectionString,
    taskDirectory: null,
    jobs: [cleanupInactiveSessions, slowJob],
    crontab: "",
    logger: testLogger,
    bootstrapJobs: [],
    concurrency: 4,
    shutdownGraceMs: 5000,
    ...options,
  });
  running.push(handle);
  return handle;
}

async function runsOf(task: string) {
  const { rows } = await db.pool.query("select * from scheduler.job_runs where task = $1 order by id", [task]);
  return rows;
}

describe("scheduler runner", () => {
  after(async () => {
    await Promise.all(running.map((handle) => handle.stop()));
  });

  it("refuses to start on a crontab naming a task that has no task file, naming the line", async () => {
    await assert.rejects(
      () => start({ crontab: "# ok\n*/5 * * * * cleanup_inactive_sessions\n0 * * * * not_a_task" }),
      /\(crontab option\):3: task 'not_a_task' has no task file/,
    );
  });

  it("publishes the crontab to scheduled_jobs with a correct next_run", async () => {
    const handle = await start({ crontab: "# Ends idle sessions.\n*/10 * * * * cleanup_inactive_sessions\n0 3 * * * slow_job ?id=nightly_sleep {ms: 1}" });
    const { rows } = await db.pool.query("select *, now() as now from scheduled_jobs order by job_name");
    assert.deepEqual(rows.map((row) => [row.job_name, row.task, row.schedule, row.enabled]), [
      ["cleanup_inactive_sessions", "cleanup_inactive_sessions", "*/10 * * * *", true],
      ["nightly_sleep", "slow_job", "0 3 * * *", true],
    ]);
    assert.equal(rows[0].description, "Ends idle sessions.");
    const next = rows[0].next_run as Date;
    assert.equal(next.getUTCMinutes() % 10, 0);
    // Against the view's own now(): the test's clock, read after the query, may be past a tick.
    const now = (rows[0].now as Date).getTime();
    assert.ok(next.getTime() > now && next.getTime() <= now + 10 * 60_000);
    await handle.stop();
  });

  it("runs a job added from SQL with add_job() and records it", async () => {
    const handle = await start();
    const { rows: queued } = await db.pool.query(`select id from graphile_worker.add_job('cleanup_inactive_sessions', '{"enforce": false}')`);
    // This job's run: the previous test's node had a */10 entry of the same task, and a tick of
    // it may have run while that node was up.
    const [run] = await eventually(async () => {
      const rows = (await runsOf("cleanup_inactive_sessions")).filter((row) => row.status !== "running" && row.job_id === queued[0].id);
      return rows.length > 0 && rows;
    });
    assert.equal(run.status, "success");
    assert.equal(run.dry_run, true);
    assert.equal(run.node_id, handle.nodeId);
    await handle.stop();
  });

  it("never runs a task twice at once, even for jobs added without a queue", async () => {
    const handle = await start({ concurrency: 4 });
    for (let i = 0; i < 3; i++) await db.pool.query(`select graphile_worker.add_job('slow_job', json_build_object('ms', 300, 'tag', 'overlap${i}'))`);
    const runs = await eventually(async () => {
      const rows = (await runsOf("slow_job")).filter((row) => String(row.message ?? "").includes("overlap"));
      return rows.length === 3 && rows.every((row) => row.status === "success") && rows;
    });
    const spans = runs.map((row) => [row.started_at.getTime(), row.finished_at.getTime()] as const).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) assert.ok(spans[i]![0] >= spans[i - 1]![1] - 5, `run ${i} overlapped the previous one`);
    await handle.stop();
  });

  it("runJob with wait resolves with the finished run; a bad payload is refused before queueing", async () => {
    const handle = await start();
    const { run } = await handle.runJob("slow_job", { ms: 10, tag: "waited" }, { wait: true, timeoutMs: 10_000 });
    assert.equal(run?.status, "success");
    assert.match(String(run?.message), /waited/);
    await assert.rejects(() => handle.runJob("slow_job", { ms: "long" }), /ms/);
    await assert.rejects(() => handle.runJob("nope"), /no job or crontab entry named 'nope'/);
    await handle.stop();
  });

  it("cancels the SQL of a run that exceeds its timeout and records the failure", async () => {
    const handle = await start();
    const started = Date.now();
    const { run } = await handle.runJob("slow_job", { ms: 20_000, tag: "too-slow" }, { wait: true, timeoutMs: 15_000 });
    assert.equal(run?.status, "failed");
    assert.match(String(run?.error), /exceeded its timeout of 5s/);
    assert.ok(Date.now() - started < 9000, "cancelled near the timeout, not after the sleep");
    await handle.stop();
  });

  it("skips runs of a paused job on every node, and resumes", async () => {
    const handle = await start({ crontab: "*/10 * * * * cleanup_inactive_sessions" });
    await db.pool.query("select scheduler.pause_job('cleanup_inactive_sessions', 'maintenance')");
    const before = (await runsOf("cleanup_inactive_sessions")).length;
    const skipped = new Promise((resolve) => handle.events.once("job:skipped", resolve));
    await db.pool.query(`select graphile_worker.add_job('cleanup_inactive_sessions')`);
    await skipped;
    assert.equal((await runsOf("cleanup_inactive_sessions")).length, before, "no run recorded while paused");
    const paused = await db.pool.query("select enabled, next_run from scheduled_jobs where job_name = 'cleanup_inactive_sessions'");
    assert.deepEqual(paused.rows[0], { enabled: false, next_run: null });
    await db.pool.query("select scheduler.resume_job('cleanup_inactive_sessions')");
    const { run } = await handle.runJob("cleanup_inactive_sessions", {}, { wait: true });
    assert.equal(run?.status, "success");
    const resumed = await db.pool.query("select enabled from scheduled_jobs where job_name = 'cleanup_inactive_sessions'");
    assert.equal(resumed.rows[0].enabled, true);
    await handle.stop();
  });

  it("applies crontab edits within seconds and keeps the old schedule on a bad edit", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-crontab-"));
    const file = path.join(dir, "crontab");
    fs.writeFileSync(file, "*/10 * * * * cleanup_inactive_sessions\n");
    const handle = await start({ crontab: undefined, crontabPath: file, crontabPollMs: 200 });
    const schedule = async () => (await db.pool.query("select job_name, schedule from scheduled_jobs order by job_name")).rows;
    assert.deepEqual(await schedule(), [{ job_name: "cleanup_inactive_sessions", schedule: "*/10 * * * *" }]);

    fs.writeFileSync(file, "*/5 * * * * cleanup_inactive_sessions\n30 2 * * * slow_job {ms: 1}\n");
    const started = Date.now();
    await eventually(async () => (await schedule()).length === 2, { timeoutMs: 5000, what: "the edit to apply" });
    assert.ok(Date.now() - started < 5000);
    assert.deepEqual(handle.schedules().map((entry) => entry.schedule), ["*/5 * * * *", "30 2 * * *"]);

    fs.writeFileSync(file, "*/5 * * * * cleanup_inactive_sessions\n99 2 * * * slow_job\n");
    await sleep(800);
    assert.deepEqual((await schedule()).map((row) => row.schedule), ["*/5 * * * *", "30 2 * * *"], "bad edit ignored");
    await assert.rejects(() => handle.reloadCrontab(), /:2: Too large value '99'/);
    await handle.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("serves no HTTP endpoint unless asked: an embedding application opens no port", async () => {
    const saved = process.env.SCHEDULER_HTTP_ADDR;
    delete process.env.SCHEDULER_HTTP_ADDR;
    try {
      const quiet = await start();
      assert.equal(quiet.httpAddress, null);
      const asked = await start({ http: "127.0.0.1:0" });
      assert.match(asked.httpAddress ?? "", /^127\.0\.0\.1:\d+$/);
      assert.equal((await fetch(`http://${asked.httpAddress}/healthz`)).status, 200);
      await Promise.all([quiet.stop(), asked.stop()]);
    } finally {
      if (saved === undefined) delete process.env.SCHEDULER_HTTP_ADDR;
      else process.env.SCHEDULER_HTTP_ADDR = saved;
    }
  });

  it("lets a running job finish on stop() and leaves nothing locked", async () => {
    const handle = await start();
    // A run's 'running' row shows only after it has run for 1 s (RUNNING_ROW_AFTER_MS): the run
    // is long enough for that row to be seen before it ends (a 1.2 s run left a 0.2 s window).
    await handle.runJob("slow_job", { ms: 3000, tag: "shutdown" });
    await eventually(async () => (await runsOf("slow_job")).some((row) => row.status === "running" && row.message === null));
    await handle.stop();
    const runs = (await runsOf("slow_job")).filter((row) => row.message === "slept 3000 ms shutdown");
    assert.equal(runs.length, 1);
    assert.equal(runs[0].status, "success");
    const left = await db.pool.query("select id, locked_at from graphile_worker.jobs where task_identifier = 'slow_job'");
    assert.deepEqual(left.rows, [], "the finished job was completed, not left locked");
  });

  it("cancels jobs still running when the grace period ends, marks them abandoned and unlocks them", async () => {
    const handle = await start({ shutdownGraceMs: 300 });
    await handle.runJob("slow_job", { ms: 3000, tag: "grace" });
    await eventually(async () => (await runsOf("slow_job")).some((row) => row.status === "running"));
    await handle.stop();
    const { rows } = await db.pool.query("select status, error from scheduler.job_runs where task = 'slow_job' and status <> 'success' order by id desc limit 1");
    assert.ok(["abandoned", "failed"].includes(rows[0].status), rows[0].status);
    const left = await db.pool.query("select locked_at from graphile_worker.jobs where task_identifier = 'slow_job'");
    assert.ok(left.rows.every((row) => row.locked_at === null), "no job left locked");
    await db.pool.query("delete from graphile_worker._private_jobs");
  });

  it("queues a bootstrap job once when nodes start together", async () => {
    await db.pool.query("delete from scheduler.bootstrap_runs");
    const before = (await runsOf("cleanup_inactive_sessions")).length;
    const nodes = await Promise.all([start({ bootstrapJobs: ["cleanup_inactive_sessions"] }), start({ bootstrapJobs: ["cleanup_inactive_sessions"] })]);
    await eventually(async () => (await runsOf("cleanup_inactive_sessions")).filter((row) => row.status === "success").length > before);
    await sleep(500);
    assert.equal((await runsOf("cleanup_inactive_sessions")).length, before + 1);
    await Promise.all(nodes.map((node) => node.stop()));
  });
});
