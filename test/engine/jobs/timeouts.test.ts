// A job's timeout bounds its run. At the deadline the abort signal fires and its SQL is
// cancelled; a function that has not returned a moment later is stuck: recorded failed at once,
// it keeps its worker and the task's lock until it returns (the next run waits: no overlap), and
// `status` and the events show it. A function that returns after its deadline, even one that
// caught the cancel and returned normally, is failed, never success.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { defineJob } from "../../../src/engine/jobs/define.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { startScheduler } from "../../../src/scheduler.ts";
import { runCliProcess } from "../../helpers/cli.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

const db = useTestDatabase();
/** Resolves the function of the stuck run when the test says so. */
let letStuckReturn: () => void = () => {};

const ignoresSignal = defineJob({
  name: "ignores_signal",
  description: "waits for the test, not for its signal (a call without a time-out)",
  payload: { tag: z.string() },
  timeoutMs: 300,
  async run({ payload }) {
    if (payload.tag === "stuck") await new Promise<void>((resolve) => (letStuckReturn = resolve));
    return { itemsProcessed: 1, itemsFailed: 0, message: payload.tag };
  },
});

const swallowsCancel = defineJob({
  name: "swallows_cancel",
  description: "catches the cancellation of its SQL and returns as if done",
  payload: {},
  timeoutMs: 300,
  async run({ db: conn }) {
    try {
      await conn.query("select pg_sleep(5)");
    } catch {
      // swallowed
    }
    return { itemsProcessed: 1, itemsFailed: 0, message: "pretends to be done" };
  },
});

let node: SchedulerHandle | undefined;
const stuckEvents: unknown[] = [];

const history = async (task: string) =>
  (await db.pool.query<{ id: string; status: string; error: string | null; message: string | null; stuck: string | null; started_at: Date; finished_at: Date | null; payload: { tag?: string } }>(
    "select id, status, error, message, details->>'stuck' as stuck, started_at, finished_at, payload from scheduler.job_runs where task = $1 order by id",
    [task],
  )).rows;

describe("a job's timeout", () => {
  before(async () => {
    node = await startScheduler({
      connectionString: db.connectionString,
      taskDirectory: null,
      jobs: [ignoresSignal, swallowsCancel],
      crontab: "",
      bootstrapJobs: [],
      services: false,
      concurrency: 3,
      logger: testLogger,
    });
    node.events.on("job:stuck", (event) => stuckEvents.push(event));
  });
  after(async () => {
    letStuckReturn();
    await node?.stop();
  });

  it("records a run whose function does not stop as failed at its deadline, keeps the task's lock until it returns, and shows it stuck", async () => {
    await db.pool.query("select graphile_worker.add_job('ignores_signal', '{\"tag\":\"stuck\"}'::json, max_attempts => 1)");
    const [stuck] = await eventually(async () => {
      const rows = await history("ignores_signal");
      return rows[0]?.stuck === "true" && rows;
    }, { what: "the run to be recorded stuck" });
    assert.equal(stuck!.status, "failed");
    assert.equal(stuck!.error, "timed out after 300 ms; the function did not stop");
    assert.equal(stuckEvents.length, 1);

    // `status` names it, with its node.
    const status = await runCliProcess(["status"], { DATABASE_URL: db.connectionString });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`ignores_signal: STUCK: run ${stuck!.id} on .* has not returned`));
    const json = JSON.parse((await runCliProcess(["status", "--json"], { DATABASE_URL: db.connectionString })).stdout) as { stuckRuns: { id: unknown }[] };
    assert.deepEqual(json.stuckRuns.map((run) => String(run.id)), [stuck!.id]);

    // The next run of the task waits for the lock the stuck run still holds.
    await db.pool.query("select graphile_worker.add_job('ignores_signal', '{\"tag\":\"next\"}'::json, max_attempts => 1)");
    await eventually(async () => (await db.pool.query("select 1 from scheduler.lock_waiters")).rowCount! > 0, { what: "the next run to wait for the lock" });
    assert.equal((await history("ignores_signal")).length, 1, "the next run started beside the stuck one");
    const returnedAt = new Date();
    letStuckReturn();
    const rows = await eventually(async () => {
      const found = await history("ignores_signal");
      return found.length === 2 && found[1]!.status === "success" && found;
    }, { what: "the next run to run once the stuck one returned" });
    assert.equal(rows[0]!.status, "failed", "a run that returned after its deadline is never a success");
    assert.equal(rows[0]!.stuck, "false");
    assert.ok(rows[1]!.started_at >= new Date(returnedAt.getTime() - 5), "the next run started only after the stuck run returned");
    const after = await runCliProcess(["status"], { DATABASE_URL: db.connectionString });
    assert.doesNotMatch(after.stdout, /STUCK/);
  });

  it("records a run that caught the cancellation of its SQL and returned as failed, not success", async () => {
    await db.pool.query("select graphile_worker.add_job('swallows_cancel', '{}'::json, max_attempts => 1)");
    const [run] = await eventually(async () => {
      const rows = await history("swallows_cancel");
      return rows[0]?.status !== undefined && rows[0]?.status !== "running" && rows;
    }, { what: "the run's outcome" });
    assert.equal(run!.status, "failed");
    assert.match(run!.error!, /exceeded its timeout of 300 ms and was cancelled/);
    assert.equal(run!.stuck, null, "it returned at once: not stuck");
  });
});
