import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { defineJob } from "../../../src/engine/jobs/define.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { startScheduler } from "../../../src/scheduler.ts";
import { runCliProcess } from "../../helpers/cli.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { parsePrometheus } from "../../helpers/prometheus.ts";
import { eventually } from "../../helpers/wait.ts";

// What status, the JSON API, scheduled_jobs and /metrics say about a schedule's runs: runs
// (ticks and manual runs) and their attempts apart, a dry run labelled wherever the last run
// is shown, and the last success only one that did the entry's work (any run of an entry
// whose own payload is a dry run).

const db = useTestDatabase();
let calls = 0;
const cleanup = defineJob({
  name: "cleanup",
  description: "fails its first attempt ever, then succeeds",
  payload: {},
  async run({ payload }) {
    calls += 1;
    if (calls === 1) throw new Error("the first attempt fails");
    return { itemsProcessed: payload.enforce ? 5 : 0, itemsFailed: 0, message: payload.enforce ? "deleted 5" : "would delete 5" };
  },
});

/** Daily entries whose ticks are hours away from now, so that none passes while the test runs. */
async function crontabAwayFromNow(): Promise<string> {
  const { rows: [at] } = await db.pool.query("select extract(hour from now() + interval '6 hours')::int as h, extract(minute from now())::int as m");
  return `${at.m} ${at.h} * * * cleanup ?id=nightly\n${at.m} ${(at.h + 1) % 24} * * * cleanup ?id=nightly_preview {"enforce": false}\n`;
}

let node: SchedulerHandle | undefined;
after(async () => {
  await node?.stop();
});

interface Shown {
  run_count: number;
  attempt_count: number;
  success_count: number;
  failure_count: number;
  last_status: string | null;
  last_run_dry_run: boolean | null;
  last_success: string | null;
}

describe("runs, attempts and dry runs, as an operator reads them", () => {
  it("counts a retried run once with its attempts apart, labels a dry run, and keeps the last success for a run that did the work", async () => {
    node = await startScheduler({ connectionString: db.connectionString, platform: false, taskDirectory: null, jobs: [cleanup], logger: testLogger, bootstrapJobs: [], concurrency: 2, crontab: await crontabAwayFromNow(), http: "127.0.0.1:0", metricsCacheMs: 0 });

    // One run that fails its first attempt and succeeds on its retry.
    const first = await node.runJob("nightly", {});
    const success = await eventually(async () => {
      const { rows } = await db.pool.query("select finished_at from scheduler.job_runs where job_id = $1 and status = 'success'", [first.jobId]);
      return rows[0]?.finished_at as Date | undefined;
    }, { timeoutMs: 30_000, what: "the retry of the first run to succeed" });
    // Then a dry run by hand: it succeeds and changes nothing.
    const dry = await node.runJob("nightly", { enforce: false }, { wait: true });
    assert.equal(dry.run?.status, "success");
    // The preview entry's own payload is a dry run: its runs are its work.
    const preview = await node.runJob("nightly_preview", {}, { wait: true });
    assert.equal(preview.run?.status, "success");
    const { rows: [previewRun] } = await db.pool.query("select finished_at, dry_run from scheduler.job_runs where id = $1", [preview.run!.id]);
    assert.equal(previewRun.dry_run, true);

    const view = async (job: string) => (await db.pool.query("select * from scheduled_jobs where job_name = $1", [job])).rows[0];
    const nightly = await view("nightly");
    assert.deepEqual(
      [nightly.run_count, nightly.attempt_count, nightly.success_count, nightly.failure_count].map(Number),
      [2, 3, 2, 1],
      "two runs (the retried one and the dry run), three attempts, one of them failed",
    );
    assert.equal(nightly.last_status, "success");
    assert.equal(nightly.last_run_dry_run, true);
    assert.equal(nightly.last_success.getTime(), success.getTime(), "the last success is the retry that did the work, not the dry run");
    const previewView = await view("nightly_preview");
    assert.equal(previewView.last_run_dry_run, true);
    assert.equal(previewView.last_success.getTime(), previewRun.finished_at.getTime(), "an entry whose own payload is a dry run: its dry runs are its work");

    // The JSON API: the same, as numbers.
    const api = (await (await fetch(`http://${node.httpAddress}/api/schedules`)).json()) as (Shown & { job_name: string })[];
    const shown = api.find((row) => row.job_name === "nightly")!;
    assert.deepEqual(
      { run_count: shown.run_count, attempt_count: shown.attempt_count, success_count: shown.success_count, failure_count: shown.failure_count, last_run_dry_run: shown.last_run_dry_run },
      { run_count: 2, attempt_count: 3, success_count: 2, failure_count: 1, last_run_dry_run: true },
    );
    assert.equal(new Date(shown.last_success!).getTime(), success.getTime());

    // /metrics: the last success is the real one.
    let metrics = parsePrometheus("");
    await eventually(async () => {
      metrics = parsePrometheus(await (await fetch(`http://${node!.httpAddress}/metrics`)).text());
      return metrics.some((sample) => sample.name === "scheduler_schedule_last_success_timestamp_seconds" && sample.labels.schedule === "nightly");
    }, { timeoutMs: 15_000, what: "the cluster gauges in /metrics" });
    const lastSuccess = metrics.find((sample) => sample.name === "scheduler_schedule_last_success_timestamp_seconds" && sample.labels.schedule === "nightly")!;
    assert.ok(Math.abs(lastSuccess.value - success.getTime() / 1000) < 0.01, `${lastSuccess.value} vs ${success.getTime() / 1000}`);

    // status: the dry run labelled, the real success named, runs and attempts in their columns.
    const status = await runCliProcess(["status"], { DATABASE_URL: db.connectionString });
    assert.equal(status.code, 0, status.stderr);
    const line = status.stdout.split("\n").find((text) => text.startsWith("nightly "))!;
    assert.match(line, /success \(dry run\)/);
    assert.match(line, /\s2\s+3 \(1 failed\)\s*$/, line);
    assert.match(status.stdout, /^nightly: its last run was a dry run \(it changed nothing\); last success that did its work: \d{4}-\d\d-\d\dT/m);
    const json = JSON.parse((await runCliProcess(["status", "--json"], { DATABASE_URL: db.connectionString })).stdout) as { jobs: (Shown & { job_name: string })[] };
    const fromCli = json.jobs.find((row) => row.job_name === "nightly")!;
    assert.deepEqual([fromCli.run_count, fromCli.attempt_count, fromCli.last_run_dry_run], [2, 3, true]);
  });
});
