import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import { parseCrontab, type WorkerEvents } from "graphile-worker";
import pino from "pino";
import { queueTick, startCronLoop } from "../../../src/engine/crontab/cron-loop.ts";
import { delayCronJobs } from "../../../src/engine/graphile/internals.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

// The node's cron loop (src/engine/crontab/cron-loop.ts): graphile-worker's cron, on the clock
// it is given (the database's, as the node estimates it), and never queueing a tick the
// database's own clock has not reached. With real rows; the loop's clock is set a little
// before a minute boundary so that nothing waits for a real one.

const db = useTestDatabase();
const MINUTE = 60_000;

const jobsOf = async (task: string) =>
  (await db.pool.query<{ run_at: Date; created_at: Date; payload: { _cron: { ts: string; backfilled: boolean }; _jitter_ms?: number } }>(
    "select run_at, created_at, payload from graphile_worker._private_jobs where task_id = (select id from graphile_worker._private_tasks where identifier = $1) order by id",
    [task],
  )).rows;
const lastExecution = async (identifier: string) =>
  (await db.pool.query<{ last_execution: Date | null }>("select last_execution from graphile_worker._private_known_crontabs where identifier = $1", [identifier])).rows[0]?.last_execution ?? null;

describe("the node's cron loop", () => {
  it("queue_tick: a tick the database's clock has not reached is not queued; one it has is queued once across nodes", async () => {
    const [item] = parseCrontab("* * * * * loop_guard");
    const jobFor = (tickMs: number) => [{ identifier: item!.identifier, job: { task: "loop_guard", payload: { _cron: { ts: new Date(tickMs).toISOString() } }, runAt: new Date(tickMs).toISOString(), jobKeyMode: undefined } }];
    const future = Math.ceil((Date.now() + 30_000) / MINUTE) * MINUTE;
    const early = await queueTick(db.pool, jobFor(future), future);
    assert.equal(early.due, false);
    assert.ok(early.dueInMs > 25_000 && early.dueInMs <= future - Date.now() + 1000, `due in ${early.dueInMs} ms`);
    assert.equal(early.queued, 0);
    assert.equal(await lastExecution(item!.identifier), null, "known_crontabs not touched");
    assert.deepEqual(await jobsOf("loop_guard"), []);

    const past = Math.floor(Date.now() / MINUTE) * MINUTE;
    assert.deepEqual(await queueTick(db.pool, jobFor(past), past), { due: true, queued: 1, dueInMs: 0 });
    assert.deepEqual(await queueTick(db.pool, jobFor(past), past), { due: true, queued: 0, dueInMs: 0 }, "a second node's offer of the same tick adds nothing");
    assert.equal((await lastExecution(item!.identifier))?.getTime(), past);
    assert.equal((await jobsOf("loop_guard")).length, 1);
  });

  it("fires on the clock it is given, not this machine's: a tick already past by the database's clock is queued when that clock turns, jitter hook and all", async () => {
    // The loop's clock: 300 ms before a minute boundary the database has passed already.
    const tick = Math.floor(Date.now() / MINUTE) * MINUTE - MINUTE;
    const offset = tick - 300 - Date.now();
    const items = parseCrontab("* * * * * loop_behind");
    const events = new EventEmitter();
    const hook = delayCronJobs(events as unknown as WorkerEvents, () => 4000, () => {});
    const loop = startCronLoop({ pool: db.pool, items, now: () => Date.now() + offset, events, logger: testLogger });
    try {
      const [job] = await eventually(async () => {
        const found = await jobsOf("loop_behind");
        return found.length > 0 && found;
      }, { what: "the tick to be queued", timeoutMs: 5000, intervalMs: 50 });
      assert.equal(job!.payload._cron.ts, new Date(tick).toISOString(), "the tick of the loop's clock");
      assert.equal(job!.payload._cron.backfilled, false);
      assert.equal(job!.run_at.getTime(), tick + 4000, "due at the runAt the jitter hook set on the emitted job");
      assert.equal(job!.payload._jitter_ms, 4000);
      assert.equal((await lastExecution(items[0]!.identifier))?.getTime(), tick);
    } finally {
      hook.stop();
      await loop.stop();
    }
  });

  it("a clock estimate ahead of the database's queues nothing early: it waits for the database's clock", async () => {
    // The loop's clock: 300 ms before a boundary that is 30 minutes away for the database.
    const tick = Math.ceil(Date.now() / MINUTE) * MINUTE + 30 * MINUTE;
    const offset = tick - 300 - Date.now();
    const lines: { msg: string; dueInMs?: number }[] = [];
    const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const items = parseCrontab("* * * * * loop_ahead");
    const loop = startCronLoop({ pool: db.pool, items, now: () => Date.now() + offset, events: new EventEmitter(), logger });
    try {
      const early = await eventually(async () => lines.find((line) => /came early by the database's clock/.test(line.msg)), { what: "the loop to find the tick early", timeoutMs: 5000, intervalMs: 50 });
      assert.ok(early.dueInMs! > 29 * MINUTE, `told to wait ${early.dueInMs} ms`);
      assert.deepEqual(await jobsOf("loop_ahead"), [], "nothing queued");
      assert.equal(await lastExecution(items[0]!.identifier), null, "known since its start, no tick recorded");
    } finally {
      await loop.stop();
    }
  });
});
