// Idle workers poll only every SCHEDULER_POLL_INTERVAL_MS (30 s by default): whatever should
// run sooner must wake them. A job queued from SQL arrives by NOTIFY; a retry wakes the node
// whose attempt failed when graphile-worker's back-off ends.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { defineJob } from "../../../src/engine/jobs/define.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { retryDelayMs } from "../../../src/engine/runner/wakeups.ts";
import { startScheduler } from "../../../src/scheduler.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

const db = useTestDatabase({ migrate: false });
const attempts: { tag: string; at: number }[] = [];

const flaky = defineJob({
  name: "flaky",
  description: "fails its first attempt",
  payload: {},
  exclusive: false,
  async run({ db: conn }) {
    const { rows } = await conn.query<{ attempts: number }>("select 1 as attempts");
    attempts.push({ tag: "flaky", at: Date.now() });
    if (attempts.filter((attempt) => attempt.tag === "flaky").length === 1) throw new Error("first attempt fails");
    return { itemsProcessed: rows.length, itemsFailed: 0, message: "second attempt" };
  },
});
// Fails its first attempt while the test holds its job's row: graphile-worker's fail_job waits
// for the row, as it waits for the server during an outage, so the back-off starts late.
let holdRow: ((jobId: string) => Promise<void>) | null = null;
const slowToFail = defineJob({
  name: "slow_to_fail",
  description: "fails its first attempt; its failure is written late",
  payload: {},
  exclusive: false,
  async run({ jobId }) {
    attempts.push({ tag: "slow_to_fail", at: Date.now() });
    if (attempts.filter((attempt) => attempt.tag === "slow_to_fail").length === 1) {
      await holdRow!(jobId!);
      throw new Error("first attempt fails");
    }
    return { itemsProcessed: 0, itemsFailed: 0, message: "second attempt" };
  },
});
const sleeper = defineJob({
  name: "sleeper",
  description: "notes when it started, then sleeps",
  payload: { tag: z.string(), ms: z.number().int().min(0) },
  exclusive: false,
  async run({ payload }) {
    attempts.push({ tag: payload.tag, at: Date.now() });
    await new Promise((resolve) => setTimeout(resolve, payload.ms));
    attempts.push({ tag: `${payload.tag} done`, at: Date.now() });
    return { itemsProcessed: 0, itemsFailed: 0, message: "slept" };
  },
});
const failsOnce = defineJob({
  name: "fails_once",
  description: "fails (its only attempt)",
  payload: {},
  exclusive: false,
  async run() {
    attempts.push({ tag: "fails_once", at: Date.now() });
    throw new Error("fails");
  },
});
const quick = defineJob({
  name: "quick",
  description: "notes when it ran",
  payload: {},
  async run() {
    attempts.push({ tag: "quick", at: Date.now() });
    return { itemsProcessed: 1, itemsFailed: 0, message: "ran" };
  },
});

describe("waking idle workers without polling", () => {
  let node: SchedulerHandle;
  before(async () => {
    node = await startScheduler({ platform: false, connectionString: db.connectionString, jobs: [flaky, quick, slowToFail, sleeper, failsOnce], logger: testLogger, concurrency: 2 });
    await new Promise((resolve) => setTimeout(resolve, 500)); // workers have polled once and sleep
  });
  after(async () => node?.stop());

  it("polls every 30 s by default, yet starts a job queued from SQL within a second (NOTIFY)", async () => {
    // Timed from the job's run_at (add_job's now(): when it was queued), not from before the
    // test's own round trip, which on a loaded machine may first have to open a connection.
    const { rows } = await db.pool.query<{ run_at: Date }>("select run_at from graphile_worker.add_job('quick', '{}')");
    const queued = rows[0]!.run_at.getTime();
    const ran = await eventually(async () => attempts.find((attempt) => attempt.tag === "quick"), { timeoutMs: 10_000, what: "the queued job to run" });
    assert.ok(ran.at - queued < 1000, `started ${ran.at - queued} ms after it was queued`);
  });

  it("retries a failed attempt when graphile-worker's back-off ends, not at the next poll", async () => {
    await db.pool.query("select graphile_worker.add_job('flaky', '{}', max_attempts => 3)");
    const [first, second] = await eventually(async () => {
      const runs = attempts.filter((attempt) => attempt.tag === "flaky");
      return runs.length >= 2 ? runs : null;
    }, { timeoutMs: 25_000, what: "the retry" });
    const gap = second!.at - first!.at;
    assert.ok(gap >= retryDelayMs(1) - 200 && gap < retryDelayMs(1) + 2000, `retried ${gap} ms after the failure (back-off ${Math.round(retryDelayMs(1))} ms, poll 30 s)`);
  });

  it("retries when the back-off counted from when the failure was written ends, even if that was long after the attempt failed", async () => {
    const holder = await db.pool.connect();
    let releasedAt = 0;
    holdRow = async (jobId) => {
      await holder.query("begin");
      await holder.query("select 1 from graphile_worker._private_jobs where id = $1 for update", [jobId]);
      setTimeout(() => {
        releasedAt = Date.now();
        holder.query("commit").finally(() => holder.release());
      }, 4000);
    };
    await db.pool.query("select graphile_worker.add_job('slow_to_fail', '{}', max_attempts => 3)");
    const [first, second] = await eventually(async () => {
      const runs = attempts.filter((attempt) => attempt.tag === "slow_to_fail");
      return runs.length >= 2 ? runs : null;
    }, { timeoutMs: 40_000, what: "the retry" });
    // graphile-worker dates the back-off from when its fail_job began (it then waited for the
    // row): the retry is due at the later of that and the moment the failure was written.
    const due = Math.max(releasedAt, first!.at + retryDelayMs(1));
    const late = second!.at - due;
    // Before: the wake-up came while the failure was still held back, and the retry waited for the 30 s poll.
    assert.ok(late > -300 && late < 2500, `retried ${late} ms after it was due (failure written ${releasedAt - first!.at} ms after the attempt began, back-off ${Math.round(retryDelayMs(1))} ms, poll 30 s)`);
  });

  it("when the worker that freed a queue takes another queue's job, an idle worker starts the freed queue's next job at once", async () => {
    // q1 runs; x1 (another queue) and then q2 (q1's queue) become due while it runs, unannounced.
    // When q1 ends its worker takes x1, due first, and leaves q2 to the idle worker.
    await db.pool.query(`select graphile_worker.add_job('sleeper', '{"tag": "q1", "ms": 600}', queue_name => 'wake_q');
                         select graphile_worker.add_job('sleeper', '{"tag": "x1", "ms": 4000}', queue_name => 'wake_x', run_at => now() + interval '200 milliseconds');
                         select graphile_worker.add_job('sleeper', '{"tag": "q2", "ms": 0}', queue_name => 'wake_q', run_at => now() + interval '300 milliseconds');`);
    const at = (tag: string) => attempts.find((attempt) => attempt.tag === tag)?.at;
    await eventually(async () => at("q2"), { timeoutMs: 10_000, what: "q2 to start" });
    const gap = at("q2")! - at("q1 done")!;
    const t0 = at("q1")!;
    const timeline = ["q1", "q1 done", "x1", "q2"].map((tag) => `${tag} +${at(tag)! - t0} ms`).join(", ");
    // Nobody was awake to take x1 when it fell due: it started when q1's worker looked again.
    assert.ok(at("x1")! - at("q1 done")! < 2500, `x1 taken by the worker that ran q1: ${timeline}`);
    assert.ok(gap < 2500, `q2 started ${gap} ms after q1 ended (x1 runs 4 s; the poll is 30 s): ${timeline}`);
  });

  it("starts the next job of a queue soon after a failure frees it, though graphile-worker writes the failure after its worker looked", async () => {
    await db.pool.query(`select graphile_worker.add_job('fails_once', '{}', queue_name => 'wake_f', max_attempts => 1);
                         select graphile_worker.add_job('sleeper', '{"tag": "f2", "ms": 0}', queue_name => 'wake_f');`);
    await eventually(async () => attempts.find((attempt) => attempt.tag === "f2"), { timeoutMs: 40_000, what: "f2 to start" });
    const failedAt = attempts.find((attempt) => attempt.tag === "fails_once")!.at;
    const gap = attempts.find((attempt) => attempt.tag === "f2")!.at - failedAt;
    assert.ok(gap < 2500, `f2 started ${gap} ms after the job before it in its queue failed (the poll is 30 s)`);
  });
});
