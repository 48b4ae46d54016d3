// A failing attempt is said once: one error line per attempt, with the error and its stack,
// not graphile-worker's report of it beside ours (its message, the stack, and the error again).
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, describe, it } from "node:test";
import pino from "pino";
import { defineJob } from "../../../src/engine/jobs/define.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { startScheduler } from "../../../src/scheduler.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

const db = useTestDatabase();
const lines: { level: number; msg: string; [key: string]: unknown }[] = [];
const sink = new Writable({
  write(chunk, _encoding, done) {
    for (const line of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(line));
    done();
  },
});

function failsLikeAMissingTable() {
  throw new Error('relation "audit_exports" does not exist');
}

const failing = defineJob({
  name: "export_audit",
  description: "fails as a first job does when its table is missing",
  payload: {},
  async run() {
    failsLikeAMissingTable();
    return { itemsProcessed: 0, itemsFailed: 0, message: "unreachable" };
  },
});

let node: SchedulerHandle | undefined;

describe("a failing job's logs", () => {
  after(async () => {
    await node?.stop();
  });

  it("have one error line per attempt, with the stack once", async () => {
    node = await startScheduler({
      connectionString: db.connectionString,
      taskDirectory: null,
      jobs: [failing],
      crontab: "",
      bootstrapJobs: [],
      services: false,
      logger: pino({ level: "debug" }, sink),
    });
    await db.pool.query("select graphile_worker.add_job('export_audit', '{}'::json, max_attempts => 2, run_at => now())");
    await eventually(async () => (await db.pool.query("select 1 from scheduler.job_runs where task = 'export_audit' and status = 'failed'")).rowCount === 1, { what: "the first attempt to fail" });
    await db.pool.query("update graphile_worker._private_jobs set run_at = now()");
    await eventually(async () => (await db.pool.query("select 1 from scheduler.job_runs where task = 'export_audit' and status = 'failed'")).rowCount === 2, { what: "the second attempt to fail" });
    await eventually(async () => lines.filter((line) => line.level >= 50).length >= 2, { what: "the error lines" });
    const errors = lines.filter((line) => line.level >= 50);
    assert.deepEqual(errors.map((line) => line.msg), ["job failed", "job failed"]);
    for (const line of errors) {
      assert.equal(line.error, 'relation "audit_exports" does not exist');
      const text = JSON.stringify(line);
      assert.equal(text.split("failsLikeAMissingTable").length - 1, 1, `the stack once: ${text}`);
    }
    // graphile-worker's own report is there, for whoever turns debug on.
    assert.ok(lines.some((line) => line.level === 20 && /^Failed task/.test(line.msg)));
  });
});
