// `run --wait` and runJob({ wait: true }) report the outcome of the run they queued. A run is
// queued with a job key ("one waiting run at most"); when an earlier run of the job failed
// and waits for its retry, add_job hands back that same job, whose failed attempt is already
// in the history: the waiter once returned that failure (found by a newcomer's trial).
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { startScheduler } from "../../../src/scheduler.ts";
import { runCliProcess } from "../../helpers/cli.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";

const db = useTestDatabase();
const tasks = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "tasks");

describe("waiting for a run whose job key hands back a job waiting for its retry", () => {
  let node: SchedulerHandle | undefined;

  before(async () => {
    node = await startScheduler({ connectionString: db.connectionString, taskDirectory: tasks, crontab: "", bootstrapJobs: [], services: false, concurrency: 2, logger: testLogger });
  });

  after(async () => {
    await node?.stop();
  });

  const attemptsOf = async (jobId: string) => (await db.pool.query("select status from scheduler.job_runs where job_id = $1 order by id", [jobId])).rows.map((row) => row.status);

  it("runJob({ wait: true }) returns the new run's outcome, not the earlier failed attempt's", async () => {
    const failed = await node!.runJob("flaky", { fail: true }, { wait: true, timeoutMs: 30_000 });
    assert.equal(failed.run?.status, "failed");
    const again = await node!.runJob("flaky", { fail: false }, { wait: true, timeoutMs: 30_000 });
    assert.equal(again.jobId, failed.jobId, "the job key handed back the job waiting for its retry");
    assert.equal(again.run?.status, "success", `got ${JSON.stringify(again.run)}`);
    assert.equal(again.run?.message, "ran");
    assert.deepEqual(await attemptsOf(again.jobId), ["failed", "success"]);
  });

  it("`run --wait` exits 0 with the new run's outcome", async () => {
    const failed = await node!.runJob("flaky", { fail: true }, { wait: true, timeoutMs: 30_000 });
    assert.equal(failed.run?.status, "failed");
    const result = await runCliProcess(["run", "flaky", "--payload", '{"fail": false}', "--wait", "--json"], { DATABASE_URL: db.connectionString, SCHEDULER_TASKS_DIR: tasks });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const printed = JSON.parse(result.stdout);
    assert.equal(String(printed.job_id), failed.jobId, "the job key handed back the job waiting for its retry");
    assert.deepEqual([printed.status, printed.message, printed.error], ["success", "ran", null]);
  });
});
