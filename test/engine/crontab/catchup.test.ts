// `?catchup=latest`: after downtime only the newest tick fill= reaches runs; the older ones are
// recorded 'missed' (reason catchup), each once, and the ticks still tile the outage. Without
// fill= the option is refused with its line. A real node, back-dated bookkeeping.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { parseCrontabText } from "../../../src/engine/crontab/parse.ts";
import { defineJob } from "../../../src/engine/jobs/define.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { startScheduler, type SchedulerOptions } from "../../../src/scheduler.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

const db = useTestDatabase();
const MINUTE = 60_000;
const tick = defineJob({ name: "tick", description: "does nothing", payload: {}, async run() {
  return { itemsProcessed: 0, itemsFailed: 0, message: "ok" };
} });
const running: SchedulerHandle[] = [];
after(async () => {
  await Promise.all(running.map((handle) => handle.stop()));
});

describe("?catchup=latest", () => {
  it("is refused without fill=, naming the line", () => {
    const { problems } = parseCrontabText("* * * * * tick\n* * * * * tick ?id=b&catchup=latest\n0 * * * * tick ?id=c&fill=1h&catchup=newest", { names: () => new Set(["tick"]), checkPayload: () => null });
    assert.deepEqual(problems.map((problem) => problem.line), [2, 3]);
    assert.match(problems[0]!.message, /\?catchup=latest needs \?fill=/);
    assert.match(problems[1]!.message, /\?catchup=newest: expected all .* or latest/);
  });

  it("runs only the newest missed tick after downtime and records the older ones missed", async () => {
    const crontab = "* * * * * tick ?id=latest_only&fill=10m&catchup=latest\n* * * * * tick ?id=every_one&fill=10m\n";
    const options: SchedulerOptions = { connectionString: db.connectionString, platform: false, taskDirectory: null, jobs: [tick], logger: testLogger, bootstrapJobs: [], concurrency: 2, crontab };
    await (await startScheduler(options)).stop();
    // Every node was down for the last six minutes.
    const last = (await db.pool.query("select date_trunc('minute', now()) - interval '6 minutes' as at")).rows[0].at as Date;
    await db.pool.query("delete from scheduler.job_runs");
    await db.pool.query("delete from graphile_worker._private_jobs");
    await db.pool.query("update scheduler.schedules set updated_at = now() - interval '1 hour'");
    await db.pool.query("update graphile_worker._private_known_crontabs set last_execution = $1", [last]);

    running.push(await startScheduler(options));
    const rows = (job: string) => db.pool.query<{ scheduled_for: Date; status: string; details: { reason?: string } | null }>(
      "select scheduled_for, status, details from scheduler.job_runs where job_name = $1 and status in ('success', 'missed') order by scheduled_for", [job]);
    // The plain entry runs each of the (at least) 5 minutes after the last tick; catch-up one, its newest.
    await eventually(async () => (await rows("every_one")).rows.filter((row) => row.status === "success").length >= 5, { timeoutMs: 20_000, what: "the plain entry's backfill" });
    const latest = await eventually(async () => {
      const found = (await rows("latest_only")).rows;
      return found.some((row) => row.status === "success") && found;
    }, { timeoutMs: 20_000, what: "the catch-up entry's newest tick" });
    const ran = latest.filter((row) => row.status === "success").map((row) => row.scheduled_for.getTime());
    const missed = latest.filter((row) => row.status === "missed");
    const everyOne = (await rows("every_one")).rows.filter((row) => row.status === "success").map((row) => row.scheduled_for.getTime());
    const newestBackfilled = Math.max(...everyOne.filter((ms) => ms < Math.max(...ran) + 1));
    assert.equal(ran.length >= 1, true);
    assert.equal(ran[0], newestBackfilled, "the newest tick of the outage ran");
    assert.ok(missed.length >= 4, `${missed.length} older ticks recorded missed`);
    assert.ok(missed.every((row) => row.details?.reason === "catchup"), "recorded as passed over by catchup, not out of fill='s reach");
    // Missed and run tile the outage, each tick once.
    const all = [...missed.map((row) => row.scheduled_for.getTime()), ...ran].sort((a, b) => a - b);
    assert.equal(new Set(all).size, all.length);
    all.forEach((ms, i) => assert.equal(ms, last.getTime() + (i + 1) * MINUTE, `minute ${i + 1} after the outage began`));
  });
});
