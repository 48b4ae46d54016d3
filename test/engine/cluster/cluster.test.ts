// Three real nodes (`node src/cli/main.ts start`) on one database, heartbeat 500 ms, dead
// after 4 s: missed cron ticks filled exactly once (of a UTC line, and of a line read in
// Asia/Kathmandu, +05:45, held back by ?jitter=), a SIGKILLed node's job rescued, a node with
// a blocked event loop left alone, a rolling restart with jobs flowing, and every cron tick of
// the whole run exactly once. Each scenario reports jobs lost, duplicate runs, recovery time.
import assert from "node:assert/strict";
import { after, before, describe, it, type TestContext } from "node:test";
import { listNodes } from "../../../src/engine/cluster/list.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { eventually, sleep } from "../../helpers/wait.ts";
import { jitterDelay } from "../../../src/engine/crontab/jitter.ts";
import { addJob, DEAD_AFTER_MS, feedJobs, fixtures, NodeProcess, overlaps, queueState, runs, tally, tickTally } from "./harness.ts";
import path from "node:path";

const db = useTestDatabase();
const MINUTE = 60_000;
const nodes: NodeProcess[] = [];
let serial = 0;
let backfillFrom: Date;
let firstLiveTick: Date;

function startNode(): NodeProcess {
  serial += 1;
  const node = new NodeProcess(`node${serial}`, { DATABASE_URL: db.connectionString, SCHEDULER_HOST: `host-${serial}`, SCHEDULER_CRONTAB: path.join(fixtures, "crontab.zoned") });
  nodes.push(node);
  return node;
}
// Every minute after the last recorded run up to the first tick surely after the nodes
// started. A minute that turned while they were starting is run once, by the backfill or
// live, whichever comes first: it counts with the missed ones (CI once saw it run live).
function minutesBeforeFirstLiveTick(): number[] {
  const minutes: number[] = [];
  for (let ts = backfillFrom.getTime() + MINUTE; ts < firstLiveTick.getTime(); ts += MINUTE) minutes.push(ts);
  return minutes;
}
const live = () => nodes.filter((node) => node.exitCode === undefined);

async function zonedRuns(where = "true", values: unknown[] = []) {
  const { rows } = await db.pool.query<{ status: string; scheduled_for: Date; started_at: Date; jitter_ms: number }>(
    `select status, scheduled_for, started_at, jitter_ms from scheduler.job_runs where job_name = 'tock_kathmandu' and ${where} order by id`,
    values,
  );
  return rows;
}

function report(t: TestContext, scenario: string, figures: { lost: number; duplicates: number; recoveryMs: number | null }): void {
  t.diagnostic(`${scenario}: jobs lost ${figures.lost}, duplicate runs ${figures.duplicates}, recovery ${figures.recoveryMs === null ? "-" : `${(figures.recoveryMs / 1000).toFixed(1)} s`}`);
}

describe("three nodes on one database", () => {
  before(async () => {
    // The crontab entry `* * * * * tick ?fill=30m` last ran 10 minutes ago (so says
    // known_crontabs): the nodes must fill the 10 missed minutes between them.
    const { rows } = await db.pool.query("select date_trunc('minute', now()) - interval '10 minutes' as last");
    backfillFrom = rows[0].last as Date;
    await db.pool.query("insert into graphile_worker._private_known_crontabs (identifier, known_since, last_execution) values ('tick', now() - interval '1 hour', $1), ('tock_kathmandu', now() - interval '1 hour', $1)", [backfillFrom]);
    const started = [startNode(), startNode(), startNode()];
    await Promise.all(started.map((node) => node.started()));
    firstLiveTick = new Date(Math.floor(Date.now() / MINUTE) * MINUTE + MINUTE);
  });
  after(async () => {
    await Promise.all(live().map((node) => node.stop()));
  });

  it("fills every missed tick exactly once, whichever node gets there first", async (t) => {
    const missed = minutesBeforeFirstLiveTick();
    const ticks = await eventually(async () => {
      const rows = (await runs(db.pool, "task = 'tick' and scheduled_for < $1", [firstLiveTick])).filter((row) => row.status === "success");
      return rows.length >= missed.length && rows;
    }, { timeoutMs: 20_000, what: "the missed ticks to run" }).catch(async (error) => {
      const { rows } = await db.pool.query("select job_name, status, scheduled_for, started_at, error, jitter_ms from scheduler.job_runs order by id");
      const { rows: jobs } = await db.pool.query("select id, task_identifier, queue_name, run_at, attempts, last_error, locked_at from graphile_worker.jobs");
      throw new Error(`${(error as Error).message}\nfirstLive ${firstLiveTick.toISOString()} backfillFrom ${backfillFrom.toISOString()}\n${JSON.stringify(rows, null, 0)}\n${JSON.stringify(jobs)}`);
    });
    assert.deepEqual(ticks.map((row) => row.scheduled_for!.getTime()).sort(), missed, "one run per missed minute, none missing");
    report(t, "3 nodes, back-filled ticks", { lost: 0, duplicates: ticks.length - missed.length, recoveryMs: null });
  });

  it("fills every missed tick of the zoned line exactly once: its even minutes in Kathmandu, odd ones in UTC, each held back by its jitter", async (t) => {
    const missed = minutesBeforeFirstLiveTick().filter((ts) => new Date(ts).getUTCMinutes() % 2 === 1);
    const ticks = await eventually(async () => {
      const rows = (await zonedRuns("scheduled_for < $1", [firstLiveTick])).filter((row) => row.status === "success");
      return rows.length >= missed.length && rows;
    }, { timeoutMs: 30_000, what: "the missed zoned ticks to run" });
    assert.deepEqual(ticks.map((row) => row.scheduled_for.getTime()).sort(), missed, "one run per missed odd UTC minute, none missing");
    for (const row of ticks) assert.equal(row.jitter_ms, jitterDelay("tock_kathmandu", row.scheduled_for.toISOString(), 10_000), "the jitter every node works out for this tick");
    report(t, "3 nodes, back-filled zoned ticks", { lost: 0, duplicates: ticks.length - missed.length, recoveryMs: null });
  });

  it("reruns the slow job of a SIGKILLed node on another node; the killed run is abandoned, never overlapping", async (t) => {
    // Longer than the dead threshold: the killed node's session is still sleeping when rescued.
    const jobId = await addJob(db.pool, "slow", { ms: 8000, tag: "killed" });
    const [first] = await eventually(async () => {
      const rows = await runs(db.pool, "job_id = $1 and status = 'running'", [jobId]);
      return rows.length === 1 && rows;
    }, { what: "the slow job to start" });
    const holder = nodes.find((node) => node.nodeId === first!.node_id)!;
    await sleep(500);
    holder.kill("SIGKILL");
    const killedAt = Date.now();
    const rerun = await eventually(async () => (await runs(db.pool, "job_id = $1 and id > $2", [jobId, first!.id]))[0], { timeoutMs: 15_000, what: "the job to run again" });
    // From the kill to the rerun's start (its started_at, taken when it claimed the task's lock),
    // not to when this test saw its row: a run's row shows only after it has run for 1 s
    // (RUNNING_ROW_AFTER_MS), and the polling adds more; neither is the rescue's time.
    const restartMs = rerun.started_at.getTime() - killedAt;
    assert.notEqual(rerun.node_id, holder.nodeId);
    const [abandoned] = await runs(db.pool, "id = $1", [first!.id]);
    assert.equal(abandoned!.status, "abandoned");
    assert.match(abandoned!.error!, new RegExp(`node ${holder.nodeId} stopped heartbeating at .* declared dead by`));
    assert.ok(rerun.started_at >= abandoned!.finished_at!, "the rerun started after the killed run was given up");
    const [rescue] = (await db.pool.query("select * from scheduler.rescues where node_id = $1", [holder.nodeId])).rows;
    assert.deepEqual(rescue.jobs_released, [jobId]);
    assert.ok(rescue.sessions_ended >= 1, "the killed node's orphaned session (still in pg_sleep) was ended");
    const done = await eventually(async () => (await runs(db.pool, "job_id = $1 and status = 'success'", [jobId]))[0], { timeoutMs: 20_000, what: "the rerun to finish" });
    assert.equal(done.id, rerun.id);
    // Known dead by its free liveness lock after one missed heartbeat (0.5 s), not the 4 s timeout.
    assert.ok(restartMs < DEAD_AFTER_MS, `restarted ${restartMs} ms after the kill (heartbeat 0.5 s, dead after ${DEAD_AFTER_MS} ms without the lock, rescue every 0.5 s)`);
    assert.deepEqual(overlaps(await runs(db.pool, "task = 'slow'")), []);
    report(t, "SIGKILL of the node running a slow job", { lost: 0, duplicates: (await runs(db.pool, "job_id = $1 and status = 'success'", [jobId])).length - 1, recoveryMs: restartMs });
    await startNode().started();
  });

  it("does not declare dead a node whose event loop is blocked for 4 heartbeats", async (t) => {
    const jobId = await addJob(db.pool, "busy", { ms: 2000, tag: "busy" });
    // The run's history row is written when it ends (a blocked node cannot write it earlier):
    // find the node through the job it locked.
    const running = await eventually(async () => {
      const { rows } = await db.pool.query<{ node_id: string }>(
        "select n.node_id from graphile_worker.jobs j join scheduler.nodes n on n.worker_pool_id = j.locked_by where j.id = $1",
        [jobId],
      );
      return rows[0];
    }, { what: "the busy job to start" });
    let longestSilence = 0;
    for (;;) {
      const row = (await listNodes(db.pool, { deadAfterMs: DEAD_AFTER_MS })).find((candidate) => candidate.node_id === running.node_id);
      longestSilence = Math.max(longestSilence, Number(row?.silent_ms ?? 0));
      assert.equal(row?.state, "alive");
      if ((await runs(db.pool, "job_id = $1 and status <> 'running'", [jobId])).length > 0) break;
      await sleep(100);
    }
    assert.ok(longestSilence >= 1500, `the node was silent for ${longestSilence} ms while blocked`);
    const [finished] = await runs(db.pool, "job_id = $1", [jobId]);
    assert.equal(finished!.status, "success");
    await sleep(1000);
    const rescued = await db.pool.query("select node_id from scheduler.rescues where node_id = $1", [running.node_id]);
    assert.deepEqual(rescued.rows, [], "never rescued");
    t.diagnostic(`blocked event loop: silent up to ${longestSilence} ms, threshold ${DEAD_AFTER_MS} ms, not rescued`);
  });

  it("loses no job and leaves nothing locked through a rolling restart (SIGTERM one node at a time)", async (t) => {
    const rescuesBefore = (await db.pool.query("select count(*)::int as n from scheduler.rescues")).rows[0].n as number;
    const feeder = feedJobs(db.pool, "roll", { ms: 150, everyMs: 60 });
    const restarted = live();
    for (const old of restarted) {
      const replacement = startNode();
      await replacement.started();
      await sleep(500);
      assert.equal(await old.stop(), 0, `${old.name} exits 0 on SIGTERM`);
    }
    const tags = await feeder.stop();
    const drainStarted = Date.now();
    await eventually(async () => {
      const state = await queueState(db.pool);
      return state.queued === 0 && state.locked === 0 && state.lockedQueues === 0;
    }, { timeoutMs: 30_000, what: "the queue to drain with nothing left locked" });
    const drainMs = Date.now() - drainStarted;
    const { lost, duplicates } = tally(await runs(db.pool, "payload->>'tag' like 'roll-%'"), tags);
    assert.deepEqual(lost, []);
    assert.deepEqual(duplicates, []);
    assert.deepEqual(overlaps(await runs(db.pool, "task like 'work_%'")), []);
    const rescuesAfter = (await db.pool.query("select count(*)::int as n from scheduler.rescues")).rows[0].n as number;
    assert.equal(rescuesAfter, rescuesBefore, "clean shutdowns release their jobs; nothing needed rescuing");
    const stopped = await db.pool.query("select node_id from scheduler.nodes where stopped_at is not null");
    assert.deepEqual(
      restarted.map((node) => node.nodeId).filter((id) => !stopped.rows.some((row) => row.node_id === id)),
      [],
      "every restarted node deregistered",
    );
    report(t, `rolling restart, ${tags.length} jobs`, { lost: lost.length, duplicates: duplicates.length, recoveryMs: drainMs });
  });

  it("ran every cron tick of the whole run exactly once, none missing", async (t) => {
    // At least one live tick (not back-filled) must have happened.
    await eventually(async () => (await runs(db.pool, "task = 'tick' and scheduled_for >= $1 and status = 'success'", [firstLiveTick])).length > 0, {
      timeoutMs: 75_000,
      intervalMs: 500,
      what: "a live tick",
    });
    const rows = await runs(db.pool, "task = 'tick'");
    const { ticks, missing, duplicates } = tickTally(rows, backfillFrom.getTime() + MINUTE);
    assert.deepEqual(missing, [], "every minute from the back-fill to the last tick");
    assert.deepEqual(duplicates, []);
    assert.equal(rows.length, ticks, "one history row per tick");
    assert.ok(rows.every((row) => row.status === "success"));
    const liveTicks = rows.filter((row) => row.scheduled_for! >= firstLiveTick).length;
    report(t, `cron, ${ticks} ticks (${liveTicks} live) across kill and restarts`, { lost: missing.length, duplicates: duplicates.length, recoveryMs: null });

    const zoned = await zonedRuns();
    const perTick = new Map<number, number>();
    for (const row of zoned) perTick.set(row.scheduled_for.getTime(), (perTick.get(row.scheduled_for.getTime()) ?? 0) + 1);
    const last = Math.max(...perTick.keys());
    const expected: number[] = [];
    for (let ts = backfillFrom.getTime() + MINUTE; ts <= last; ts += MINUTE) if (new Date(ts).getUTCMinutes() % 2 === 1) expected.push(ts);
    assert.deepEqual([...perTick.keys()].sort(), expected, "every odd UTC minute (even in Kathmandu), none other");
    assert.deepEqual([...perTick].filter(([, n]) => n > 1), [], "no zoned tick twice");
    assert.ok(zoned.every((row) => row.status === "success" && row.jitter_ms === jitterDelay("tock_kathmandu", row.scheduled_for.toISOString(), 10_000)));
    assert.ok(zoned.every((row) => row.started_at.getTime() >= row.scheduled_for.getTime() + row.jitter_ms), "no run started before its tick plus its jitter");
    report(t, `zoned cron, ${expected.length} ticks across kill and restarts`, { lost: 0, duplicates: 0, recoveryMs: null });
  });
});
