// Ten real nodes (`node src/cli/main.ts start`, one job at a time each) on one database,
// heartbeat 500 ms, dead after 4 s: back-filled and live cron ticks run exactly once, the
// node running a job is SIGKILLed and exactly one other node rescues it, `nodes` and
// `scheduled_jobs` stay right, and no live node is ever declared dead.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { listNodes } from "../../../src/engine/cluster/list.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { eventually, sleep } from "../../helpers/wait.ts";
import { addJob, DEAD_AFTER_MS, NodeProcess, runs, tickTally } from "./harness.ts";

const db = useTestDatabase();
const MINUTE = 60_000;
const COUNT = 10;
const nodes: NodeProcess[] = [];
let backfillFrom: Date;
let firstLiveTick: Date;

describe(`${COUNT} nodes on one database`, () => {
  before(async () => {
    // `* * * * * tick ?fill=30m` last ran 4 minutes ago: the nodes fill the missed minutes.
    backfillFrom = (await db.pool.query("select date_trunc('minute', now()) - interval '4 minutes' as last")).rows[0].last as Date;
    await db.pool.query("insert into graphile_worker._private_known_crontabs (identifier, known_since, last_execution) values ('tick', now() - interval '1 hour', $1)", [backfillFrom]);
    for (let i = 1; i <= COUNT; i += 1) {
      nodes.push(new NodeProcess(`n${i}`, { DATABASE_URL: db.connectionString, SCHEDULER_HOST: `ten-${i}`, SCHEDULER_CONCURRENCY: "1", SCHEDULER_RECONCILE_SERVICES: "false" }));
    }
    await Promise.all(nodes.map((node) => node.started(90_000)));
    firstLiveTick = new Date(Math.floor(Date.now() / MINUTE) * MINUTE + MINUTE);
  });
  after(async () => {
    await Promise.all(nodes.filter((node) => node.exitCode === undefined).map((node) => node.stop()));
  });

  it("fills every missed tick exactly once", async () => {
    // Every minute after the last recorded run up to the first tick surely after the nodes
    // started. Ten nodes take a while to start: a minute that turned meanwhile is run once,
    // by the backfill or live, and counts with the missed ones (as in cluster.test.ts).
    const missed: number[] = [];
    for (let ts = backfillFrom.getTime() + MINUTE; ts < firstLiveTick.getTime(); ts += MINUTE) missed.push(ts);
    const ticks = await eventually(async () => {
      const rows = (await runs(db.pool, "task = 'tick' and scheduled_for < $1", [firstLiveTick])).filter((row) => row.status === "success");
      return rows.length >= missed.length && rows;
    }, { timeoutMs: 30_000, what: "the missed ticks to run" });
    assert.deepEqual(ticks.map((row) => row.scheduled_for!.getTime()).sort(), missed);
  });

  it("has exactly one other node rescue a SIGKILLed node's job", async () => {
    const jobId = await addJob(db.pool, "slow", { ms: 6000, tag: "ten-killed" });
    const [first] = await eventually(async () => {
      const rows = await runs(db.pool, "job_id = $1 and status = 'running'", [jobId]);
      return rows.length === 1 && rows;
    }, { timeoutMs: 15_000, what: "the slow job to start" });
    const victim = nodes.find((node) => node.nodeId === first!.node_id)!;
    victim.kill("SIGKILL");
    await victim.exited;
    const rerun = await eventually(async () => (await runs(db.pool, "job_id = $1 and id > $2", [jobId, first!.id]))[0], { timeoutMs: 20_000, what: "the job to run again" });
    assert.notEqual(rerun.node_id, victim.nodeId);
    const rescues = (await db.pool.query("select node_id, rescued_by, jobs_released from scheduler.rescues")).rows;
    assert.equal(rescues.length, 1, `one rescue in all: ${JSON.stringify(rescues)}`);
    assert.equal(rescues[0].node_id, victim.nodeId);
    assert.deepEqual(rescues[0].jobs_released, [jobId]);
    await eventually(async () => (await runs(db.pool, "job_id = $1 and status = 'success'", [jobId])).length === 1, { timeoutMs: 20_000, what: "the rerun to finish" });
    assert.equal((await runs(db.pool, "job_id = $1 and status = 'success'", [jobId])).length, 1, "it ran to the end once");
  });

  it("lists nine live nodes and the dead one in `nodes`, and the schedule in scheduled_jobs", async () => {
    const listed = await listNodes(db.pool, { deadAfterMs: DEAD_AFTER_MS });
    const victim = nodes.find((node) => node.exitCode !== undefined)!;
    assert.deepEqual(listed.filter((row) => row.state === "alive").map((row) => row.node_id).sort(), nodes.filter((node) => node !== victim).map((node) => node.nodeId).sort());
    assert.deepEqual(listed.filter((row) => row.state === "dead").map((row) => row.node_id), [victim.nodeId]);
    // next_run is the next tick after the view's now(): compared with that now, not with the
    // test's clock read after a query that may have taken a while on a loaded machine.
    const [tick] = (await db.pool.query("select job_name, enabled, last_run, next_run, last_status, now() as now from scheduled_jobs where job_name = 'tick'")).rows;
    assert.equal(tick.enabled, true);
    assert.equal(tick.last_status, "success");
    const now = (tick.now as Date).getTime();
    assert.ok(tick.next_run.getTime() > now - 1000 && tick.next_run.getTime() <= now + MINUTE, `next run ${tick.next_run?.toISOString()} within the minute after ${tick.now.toISOString()}`);
  });

  it("runs the live ticks exactly once, and never declared a live node dead", async () => {
    await eventually(async () => (await runs(db.pool, "task = 'tick' and scheduled_for >= $1 and status = 'success'", [firstLiveTick])).length > 0, {
      timeoutMs: 75_000,
      intervalMs: 500,
      what: "a live tick",
    });
    await sleep(500);
    const rows = await runs(db.pool, "task = 'tick'");
    const { missing, duplicates } = tickTally(rows, backfillFrom.getTime() + MINUTE);
    assert.deepEqual(missing, []);
    assert.deepEqual(duplicates, []);
    const victim = nodes.find((node) => node.exitCode !== undefined)!;
    const rescued = (await db.pool.query("select node_id from scheduler.rescues")).rows.map((row) => row.node_id);
    assert.deepEqual(rescued, [victim.nodeId], "only the killed node was ever rescued");
    for (const node of nodes) {
      if (node === victim) continue;
      assert.deepEqual(node.logged(/had been declared dead/), [], `${node.name} was never declared dead`);
    }
  });
});
