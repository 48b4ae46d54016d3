import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { z } from "zod";
import { jitterDelay } from "../../../src/engine/crontab/jitter.ts";
import { hourFieldFollowsElapsedTime } from "../../../src/engine/crontab/match.ts";
import { nextZonedRun } from "../../../src/engine/crontab/schedule.ts";
import { defineJob } from "../../../src/engine/jobs/define.ts";
import { splitPayload } from "../../../src/engine/jobs/payload.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { startScheduler, type SchedulerOptions } from "../../../src/scheduler.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

// The per-entry options (tz, overlap, jitter) on a running node: `?tz=` (published with a right
// next_run, an unknown zone refused on reload with the old schedule kept), `?overlap=`
// (skip records the tick as skipped; allow only for jobs whose runs may overlap) and
// `?jitter=` (the tick's job is due tick + a delay every node agrees on, recorded in the run).

const db = useTestDatabase();

const exclusiveJob = defineJob({
  name: "exclusive_job",
  description: "sleeps `ms` in the database; runs never overlap",
  payload: { ms: z.number().int().min(0).default(10) },
  async run({ db: conn, payload }) {
    await conn.query("select pg_sleep($1::float8 / 1000)", [payload.ms]);
    return { itemsProcessed: 1, itemsFailed: 0, message: `slept ${payload.ms} ms` };
  },
});

const overlappingJob = defineJob({
  name: "overlapping_job",
  description: "independent runs",
  payload: {},
  exclusive: false,
  async run() {
    return { itemsProcessed: 0, itemsFailed: 0, message: "ok" };
  },
});

const running: SchedulerHandle[] = [];

async function start(options: SchedulerOptions): Promise<SchedulerHandle> {
  const handle = await startScheduler({
    connectionString: db.connectionString,
    platform: false,
    taskDirectory: null,
    jobs: [exclusiveJob, overlappingJob],
    logger: testLogger,
    bootstrapJobs: [],
    concurrency: 4,
    shutdownGraceMs: 5000,
    ...options,
  });
  running.push(handle);
  return handle;
}

/** Queues a job the way graphile-worker's cron queues a tick of entry `entry` (its payload keys). */
async function queueTick(entry: string, tick: Date, payload: Record<string, unknown>, queue: string | null): Promise<string> {
  const { rows } = await db.pool.query<{ id: string }>("select id from graphile_worker.add_job('exclusive_job', $1::json, queue_name => $2)", [
    JSON.stringify({ ...payload, _schedule: entry, _overlap: "skip", _cron: { ts: tick.toISOString(), backfilled: false } }),
    queue,
  ]);
  return rows[0]!.id;
}

describe("per-entry time zone, overlap and jitter on a running node", () => {
  after(async () => {
    await Promise.all(running.map((handle) => handle.stop()));
  });

  it("publishes the zone with a next_run in it; an unknown zone on reload is refused and the old schedule stays", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-tz-"));
    const file = path.join(dir, "crontab");
    fs.writeFileSync(file, "30 2 * * * exclusive_job ?id=berlin&tz=Europe/Berlin\n15 */3 * * * exclusive_job ?id=default_zone\n");
    const handle = await start({ crontabPath: file, crontabPollMs: 200, timezone: "America/New_York" });
    const rows = async () => (await db.pool.query("select job_name, schedule, timezone, next_run, now() as now from scheduled_jobs order by job_name")).rows;
    const published = await rows();
    assert.deepEqual(published.map((row) => [row.job_name, row.timezone]), [["berlin", "Europe/Berlin"], ["default_zone", "America/New_York"]]);
    for (const row of published) {
      const entry = handle.schedules().find((candidate) => candidate.identifier === row.job_name)!;
      const want = nextZonedRun({ fields: entry.fields, zone: entry.timezone, followsElapsedTime: hourFieldFollowsElapsedTime(row.schedule.split(" ")[1]) }, row.now);
      assert.equal(row.next_run.toISOString(), want!.toISOString(), `${row.job_name}: next_run in its zone`);
    }

    fs.writeFileSync(file, "30 2 * * * exclusive_job ?id=berlin&tz=Europe/Berlln\n");
    await assert.rejects(() => handle.reloadCrontab(), /crontab:1: \?tz=Europe\/Berlln: unknown time zone 'Europe\/Berlln'; use an IANA name/);
    assert.deepEqual((await rows()).map((row) => [row.job_name, row.timezone]), [["berlin", "Europe/Berlin"], ["default_zone", "America/New_York"]], "the old schedule stays");
    assert.deepEqual(handle.schedules().map((entry) => entry.timezone), ["Europe/Berlin", "America/New_York"]);
    await handle.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("refuses ?overlap=allow for a job whose runs never overlap, naming the line; takes it for one defined with exclusive: false", async () => {
    await assert.rejects(
      () => start({ crontab: "0 * * * * overlapping_job ?overlap=allow\n0 * * * * exclusive_job ?overlap=allow" }),
      /\(crontab option\):2: \?overlap=allow: runs of 'exclusive_job' never overlap \(its job is exclusive\)/,
    );
    const handle = await start({ crontab: "0 * * * * overlapping_job ?overlap=allow" });
    const [entry] = handle.schedules();
    assert.equal(entry!.overlap, "allow");
    assert.equal(entry!.item.options.queueName, undefined, "no queue: its ticks run side by side");
    assert.equal(entry!.item.options.jobKey, undefined, "no job key: every tick its own job");
    const { rows } = await db.pool.query("select overlap from scheduled_jobs where job_name = 'overlapping_job'");
    assert.equal(rows[0].overlap, "allow");
    await handle.stop();
  });

  it("?overlap=skip: a tick that finds a run in progress is recorded as skipped (reason overlap) and not run; one that does not runs", async () => {
    const handle = await start({ crontab: "0 0 1 1 * exclusive_job ?id=skipper&overlap=skip" });
    const { jobId: longId } = await handle.runJob("exclusive_job", { ms: 2500 });
    // Started: it holds the task's run lock (its 'running' row shows after 1 s), not only its job.
    await eventually(async () => (await db.pool.query("select 1 from scheduler.job_runs where job_id = $1 and status = 'running'", [longId])).rows.length === 1, { what: "the long run to start" });
    const tick = new Date();
    // One tick in the task's queue (as the crontab queues it: it waits for the long run, then
    // finds it in the history), one in no queue (it starts at once and finds the lock taken).
    await queueTick("skipper", tick, { ms: 1 }, "exclusive_job");
    await queueTick("skipper", tick, { ms: 1 }, null);
    const skipped = await eventually(async () => {
      const { rows } = await db.pool.query("select status, message, details, scheduled_for from scheduler.job_runs where job_name = 'skipper' order by id");
      return rows.length === 2 && rows;
    }, { timeoutMs: 15_000, what: "both ticks to be recorded" }).catch(async (error) => {
      const { rows } = await db.pool.query("select id, job_name, status, message, error from scheduler.job_runs order by id");
      const { rows: jobs } = await db.pool.query("select id, task_identifier, attempts, last_error from graphile_worker.jobs");
      throw new Error(`${(error as Error).message}\nruns: ${JSON.stringify(rows)}\njobs: ${JSON.stringify(jobs)}`);
    });
    for (const row of skipped) {
      assert.equal(row.status, "skipped");
      assert.equal(row.details.reason, "overlap");
      assert.equal(row.scheduled_for.toISOString(), tick.toISOString());
      assert.match(row.message, /^skipped: a run of 'exclusive_job' was in progress at this tick/);
    }
    const long = await eventually(async () => (await db.pool.query("select status from scheduler.job_runs where job_id = $1 and status <> 'running'", [longId])).rows[0], { what: "the long run to end" });
    assert.equal(long.status, "success");

    await queueTick("skipper", new Date(), { ms: 1 }, "exclusive_job");
    await eventually(async () => (await db.pool.query("select 1 from scheduler.job_runs where job_name = 'skipper' and status = 'success'")).rows.length === 1, { what: "a tick with nothing in progress to run" });
    const [view] = (await db.pool.query("select run_count, skipped_count, last_status from scheduled_jobs where job_name = 'skipper'")).rows;
    assert.deepEqual(view, { run_count: "1", skipped_count: "2", last_status: "success" }, "skipped ticks are counted apart, not as runs");
    await handle.stop();
  });

  it("?jitter=: a tick whose delay came out 0 records jitter_ms 0 (not null, which means no ?jitter=)", () => {
    const tick = { _cron: { ts: "2026-01-01T00:00:00.000Z" }, _schedule: "prompt", _jitter_max_ms: 1000 };
    assert.equal(splitPayload(tick).jitterMs, 0);
    assert.equal(splitPayload({ ...tick, _jitter_ms: 417 }).jitterMs, 417);
    assert.equal(splitPayload({ _cron: tick._cron, _schedule: "plain" }).jitterMs, null);
    assert.equal(splitPayload({ _schedule: "prompt", _jitter_max_ms: 1000 }).jitterMs, null, "a manual run of the entry has no tick");
  });

  it("?jitter=: graphile-worker's cron writes the tick's job due at tick + a delay derived from the entry and the tick; the run records it", async () => {
    // Back-dated: the node fills the three missed minutes at start, each due after its jitter.
    const { rows } = await db.pool.query("select date_trunc('minute', now()) - interval '3 minutes' as last");
    const last = rows[0].last as Date;
    await db.pool.query("insert into graphile_worker._private_known_crontabs (identifier, known_since, last_execution) values ('jittery', now() - interval '1 hour', $1), ('prompt', now() - interval '1 hour', $1)", [last]);
    const handle = await start({ crontab: "* * * * * exclusive_job ?id=jittery&fill=10m&jitter=2h\n* * * * * overlapping_job ?id=prompt&fill=10m&jitter=1s" });
    const ticks = [1, 2, 3].map((i) => new Date(last.getTime() + i * 60_000)).filter((tick) => tick.getTime() < Date.now());
    const queued = await eventually(async () => {
      const { rows: jobs } = await db.pool.query("select run_at, payload from graphile_worker._private_jobs where payload->>'_schedule' = 'jittery' order by run_at");
      return jobs.length >= 1 && jobs;
    }, { what: "the jittered tick to be queued" });
    // ?fill= entries keep every tick (no job key): one job per missed minute.
    for (const job of queued) {
      const tick = job.payload._cron.ts as string;
      const delay = jitterDelay("jittery", tick, 2 * 3_600_000);
      assert.equal(job.payload._jitter_ms, delay);
      assert.equal(job.run_at.getTime(), Date.parse(tick) + delay, "due at the tick plus its jitter");
    }
    assert.ok(queued.length >= ticks.length - 1, `${queued.length} jobs for ${ticks.length} missed ticks`);
    // The 1 s jitter: runs, and records the delay it was given.
    const prompt = await eventually(async () => (await db.pool.query("select scheduled_for, jitter_ms, started_at from scheduler.job_runs where job_name = 'prompt' and status = 'success' order by scheduled_for")).rows.length >= 2 &&
      (await db.pool.query("select scheduled_for, jitter_ms, started_at from scheduler.job_runs where job_name = 'prompt' and status = 'success' order by scheduled_for")).rows, { timeoutMs: 15_000, what: "the 1 s jittered ticks to run" });
    for (const run of prompt) {
      assert.equal(run.jitter_ms, jitterDelay("prompt", run.scheduled_for.toISOString(), 1000));
      assert.ok(run.started_at.getTime() >= run.scheduled_for.getTime() + run.jitter_ms);
    }
    const [view] = (await db.pool.query("select next_run, jitter_ms from scheduled_jobs where job_name = 'jittery'")).rows;
    assert.equal(view.jitter_ms, 7_200_000);
    assert.equal(view.next_run.getUTCSeconds(), 0, "next_run is the tick itself, without its jitter");
    await handle.stop();
  });
});
