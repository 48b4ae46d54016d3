import assert from "node:assert/strict";
import { before, beforeEach, describe, it } from "node:test";
import pg from "pg";
import { nodesCommand } from "../../../src/cli/commands/nodes.ts";
import type { CliContext } from "../../../src/cli/command.ts";
import { checkClusterSettings } from "../../../src/engine/cluster/node.ts";
import { applicationNameFor, heartbeatNode, registerNode, releaseNode, takeLivenessLock } from "../../../src/engine/cluster/nodes.ts";
import { closeLostRuns, pruneNodes, rescueDeadNodes } from "../../../src/engine/cluster/rescue.ts";
import { loadConfig } from "../../../src/config.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

const db = useTestDatabase();
const q = (text: string, values?: unknown[]) => db.pool.query(text, values);

/** A node row as a node would have left it, `silentMs` after its last heartbeat. */
async function node(id: string, options: { silentMs?: number; pool?: string; stopped?: boolean } = {}): Promise<void> {
  await q(
    `insert into scheduler.nodes (node_id, host, pid, version, worker_pool_id, last_heartbeat_at, stopped_at, application_name)
     values ($1, 'h-' || $1, 4242, 'test', $2, now() - make_interval(secs => $3::float8 / 1000), case when $4 then now() end, 'sps-node test ' || $1)`,
    [id, options.pool ?? null, options.silentMs ?? 0, options.stopped ?? false],
  );
}

/** A queued job in its own queue, locked by `pool` the way a worker locks it. */
async function lockedJob(pool: string | null, queue: string): Promise<string> {
  const { rows } = await q("select id from graphile_worker.add_job('slow', '{}', queue_name => $1)", [queue]);
  const id = rows[0].id as string;
  if (pool) {
    await q("update graphile_worker._private_jobs set locked_by = $2, locked_at = now(), attempts = 1 where id = $1", [id, pool]);
    await q("update graphile_worker._private_job_queues set locked_by = $2, locked_at = now() where queue_name = $1", [queue, pool]);
  }
  return id;
}

async function runningRun(nodeId: string, jobId: string | null): Promise<string> {
  const { rows } = await q("insert into scheduler.job_runs (job_id, job_name, task, node_id, started_at) values ($1, 'slow', 'slow', $2, now() - interval '5 seconds') returning id", [jobId, nodeId]);
  return rows[0].id as string;
}

const jobLock = async (id: string) => (await q("select locked_by from graphile_worker.jobs where id = $1", [id])).rows[0]?.locked_by ?? null;
const runStatus = async (id: string) => (await q("select status, error from scheduler.job_runs where id = $1", [id])).rows[0];

/**
 * Silence is counted from the server's start too (a restart condemns nobody), so back-dated
 * heartbeats only read as silent once the test server has been up longer than the threshold.
 */
async function serverUpForTwelveSeconds(): Promise<void> {
  await eventually(async () => (await q("select pg_postmaster_start_time() < now() - interval '12 seconds' as old")).rows[0].old, {
    timeoutMs: 20_000,
    intervalMs: 250,
    what: "the test server to be up for 12 s",
  });
}

describe("cluster registry and rescue (SQL)", () => {
  before(serverUpForTwelveSeconds);
  beforeEach(async () => {
    await q("truncate scheduler.nodes, scheduler.rescues, scheduler.job_runs");
    await q("delete from graphile_worker._private_jobs");
    await q("delete from graphile_worker._private_job_queues");
  });

  it("rescues only nodes silent past the threshold: releases their jobs and queues, abandons their runs, records it", async () => {
    await node("dead", { pool: "pool-dead", silentMs: 10_000 });
    await node("stopped", { pool: "pool-stopped", silentMs: 60_000, stopped: true });
    const liveJob = await lockedJob("pool-live", "q-live");
    const lateJob = await lockedJob("pool-late", "q-late");
    const deadJob = await lockedJob("pool-dead", "q-dead");
    const liveRun = await runningRun("live", liveJob);
    const deadRun = await runningRun("dead", deadJob);
    // Last, right before the rescue: their silence grows while the test sets up, and "late" is
    // only 3 s short of the threshold.
    await node("live", { pool: "pool-live" });
    await node("late", { pool: "pool-late", silentMs: 2000 });

    const rescues = await rescueDeadNodes(db.pool, "live", 5000, 5000);
    assert.deepEqual(rescues.map((r) => [r.node_id, r.rescued_by, r.jobs_released, r.runs_abandoned]), [["dead", "live", [deadJob], [deadRun]]]);
    assert.equal(await jobLock(deadJob), null);
    assert.equal(await jobLock(liveJob), "pool-live", "a live node keeps its job");
    assert.equal(await jobLock(lateJob), "pool-late", "a node late by less than the threshold keeps its job");
    const queues = await q("select queue_name, locked_by from graphile_worker._private_job_queues order by queue_name");
    assert.deepEqual(queues.rows, [
      { queue_name: "q-dead", locked_by: null },
      { queue_name: "q-late", locked_by: "pool-late" },
      { queue_name: "q-live", locked_by: "pool-live" },
    ]);
    const abandoned = await runStatus(deadRun);
    assert.equal(abandoned.status, "abandoned");
    assert.match(abandoned.error, /node dead stopped heartbeating at .* and was declared dead by live/);
    assert.equal((await runStatus(liveRun)).status, "running");
    const nodes = await q("select node_id, dead_at is not null as dead, dead_by from scheduler.nodes order by node_id");
    assert.deepEqual(nodes.rows.map((r) => [r.node_id, r.dead, r.dead_by]), [["dead", true, "live"], ["late", false, null], ["live", false, null], ["stopped", false, null]]);
    assert.equal((await q("select count(*)::int as n from scheduler.rescues")).rows[0].n, 1);
    assert.deepEqual(await rescueDeadNodes(db.pool, "live", 5000, 5000), [], "a node is rescued once");
  });

  it("declares a node dead after one missed heartbeat once its process is gone (liveness lock free, no session left)", async () => {
    const lockHolder = new pg.Client({ connectionString: db.connectionString, application_name: "not the node's" });
    const sessionOnly = new pg.Client({ connectionString: db.connectionString, application_name: "sps-node test session" });
    await lockHolder.connect();
    await sessionOnly.connect();
    try {
      for (const id of ["gone", "held", "session", "recent", "old-version", "orphan"]) await node(id, { pool: `pool-${id}`, silentMs: id === "recent" ? 1000 : 6000 });
      await q("update scheduler.nodes set holds_liveness_lock = (node_id <> 'old-version')");
      // A live node's heartbeat connection holds its lock; another's idle sessions are still there.
      await lockHolder.query("select pg_advisory_lock(scheduler.node_lock_key('held'))");
      // A dead node's session still running its job's query lingers until the query ends.
      const orphan = new pg.Client({ connectionString: db.connectionString, application_name: "sps-node test orphan" });
      await orphan.connect();
      orphan.on("error", () => {});
      const orphanQuery = orphan.query("select pg_sleep(30)").catch(() => "ended");
      await eventually(async () => (await q("select 1 from pg_stat_activity where application_name = 'sps-node test orphan' and state = 'active'")).rows.length === 1);
      const goneJob = await lockedJob("pool-gone", "q-gone");
      // "recent" missed no beat: its silence grew while the test set up, so date it again now.
      await q("update scheduler.nodes set last_heartbeat_at = now() - interval '1 second' where node_id = 'recent'");
      const rescues = await rescueDeadNodes(db.pool, "rescuer", 30_000, 5000);
      assert.deepEqual(rescues.map((rescue) => [rescue.node_id, rescue.jobs_released]), [["gone", [goneJob]], ["orphan", []]], "only the nodes whose process is gone, past one heartbeat");
      assert.equal(rescues[1]!.sessions_ended, 1, "the orphaned query was ended");
      assert.equal(await orphanQuery, "ended");
      await orphan.end().catch(() => {});
      assert.equal(await jobLock(goneJob), null);
      // The check took the lock for a moment only.
      const free = await lockHolder.query("select pg_try_advisory_lock(scheduler.node_lock_key('gone')) as got");
      assert.equal(free.rows[0].got, true);
    } finally {
      await lockHolder.end();
      await sessionOnly.end();
    }
  });

  it("takes a node's liveness lock without waiting: ends an older session of the node that still holds it, never another's", async () => {
    const appName = "sps-node test lock 1";
    const clients = ["older", "newer", "stranger"].map((which) => new pg.Client({ connectionString: db.connectionString, application_name: which === "stranger" ? "a rescuer" : appName }));
    const [older, newer, stranger] = clients as [pg.Client, pg.Client, pg.Client];
    for (const client of clients) {
      client.on("error", () => {});
      await client.connect();
    }
    try {
      assert.equal(await takeLivenessLock(older, "lock-node", appName, 2000).then(() => "taken"), "taken");
      // A half-open session of the same node from before a network cut: ended, then the lock is taken.
      await takeLivenessLock(newer, "lock-node", appName, 5000);
      await eventually(async () => (await q("select 1 from pg_stat_activity where application_name = $1", [appName])).rows.length === 1, { what: "the older session ended" });
      await assert.rejects(older.query("select 1"));
      // Held by a session that is not the node's (a rescuer checking it): waited for, never ended.
      await newer.query("select pg_advisory_unlock(scheduler.node_lock_key('lock-node'))");
      await stranger.query("select pg_advisory_lock(scheduler.node_lock_key('lock-node'))");
      await assert.rejects(takeLivenessLock(newer, "lock-node", appName, 500), /held by another session \(not this node's/);
      assert.equal((await stranger.query("select 1 as alive")).rows[0].alive, 1, "the stranger's session lives");
      // No backend left waiting on the lock (pg_try_advisory_lock never queues).
      assert.equal((await q("select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted")).rows[0].n, 0);
    } finally {
      await Promise.all(clients.map((client) => client.end().catch(() => {})));
    }
  });

  it("never lets a node rescue itself, and rescues a dead node once when several rescuers race", async () => {
    await node("a", { pool: "pool-a", silentMs: 10_000 });
    await node("dead", { pool: "pool-dead", silentMs: 10_000 });
    await lockedJob("pool-dead", "q-dead");
    const first = new pg.Client({ connectionString: db.connectionString });
    const second = new pg.Client({ connectionString: db.connectionString });
    await Promise.all([first.connect(), second.connect()]);
    try {
      await first.query("begin");
      const one = await first.query("select node_id from scheduler.rescue_dead_nodes('a', interval '5 seconds')");
      // While the first rescuer's transaction is open, the second skips what it locked.
      const two = await second.query("select node_id from scheduler.rescue_dead_nodes('b', interval '5 seconds')");
      await first.query("commit");
      const three = await second.query("select node_id from scheduler.rescue_dead_nodes('b', interval '5 seconds')");
      assert.deepEqual(one.rows.map((r) => r.node_id), ["dead"], "a does not rescue itself");
      assert.deepEqual(two.rows.map((r) => r.node_id), ["a"], "b skips the node a is rescuing");
      assert.deepEqual(three.rows, []);
      assert.equal((await q("select count(*)::int as n from scheduler.rescues where node_id = 'dead'")).rows[0].n, 1);
    } finally {
      await Promise.all([first.end(), second.end()]);
    }
  });

  it("ends the sessions a dead node left behind, so they release its run lock", async () => {
    await node("dead", { pool: "pool-dead", silentMs: 10_000 });
    const orphan = new pg.Client({ connectionString: db.connectionString, application_name: "sps-node test dead" });
    orphan.on("error", () => {});
    await orphan.connect();
    await orphan.query("select pg_advisory_lock(hashtextextended('systemprompt-scheduler:job:slow', 0))");
    const [rescue] = await rescueDeadNodes(db.pool, "rescuer", 5000, 5000);
    assert.equal(rescue?.sessions_ended, 1);
    await assert.rejects(() => orphan.query("select 1"));
    const key = "hashtextextended('systemprompt-scheduler:job:slow', 0)";
    const lock = await q(`select pg_try_advisory_lock(${key}) as ok, pg_advisory_unlock(${key}) as released`);
    assert.deepEqual(lock.rows[0], { ok: true, released: true }, "the run lock is free again");
  });

  it("tells a node declared dead that it was, on its next heartbeat, and lets it rejoin", async () => {
    await node("back", { silentMs: 10_000 });
    await rescueDeadNodes(db.pool, "rescuer", 5000, 5000);
    const verdict = await heartbeatNode(db.pool, "back", 5000);
    assert.ok(verdict !== "unknown" && verdict.deadAt instanceof Date && verdict.deadBy === "rescuer");
    const again = await heartbeatNode(db.pool, "back", 5000);
    assert.ok(again !== "unknown");
    assert.deepEqual({ deadAt: again.deadAt, deadBy: again.deadBy }, { deadAt: null, deadBy: null });
    assert.equal(await heartbeatNode(db.pool, "never-registered", 5000), "unknown");
    await registerNode(db.pool, { nodeId: "back", host: "h", version: "2", applicationName: applicationNameFor("h:1:abc") });
    const row = (await q("select stopped_at, dead_at, application_name from scheduler.nodes where node_id = 'back'")).rows[0];
    assert.deepEqual(row, { stopped_at: null, dead_at: null, application_name: "sps-node 1:abc h" });
  });

  it("tells a beating node how many other nodes have missed a beat (the hint for a rescue pass)", async () => {
    await q("update scheduler.nodes set stopped_at = now() where stopped_at is null and dead_at is null");
    await node("steady-a");
    await node("steady-b");
    const calm = await heartbeatNode(db.pool, "steady-a", 5000);
    assert.ok(calm !== "unknown" && calm.quietNodes === 0, "a peer that beat just now is not quiet");
    await node("gone-quiet", { silentMs: 7000 });
    await node("long-stopped", { silentMs: 60_000, stopped: true });
    const hint = await heartbeatNode(db.pool, "steady-a", 5000);
    assert.ok(hint !== "unknown" && hint.quietNodes === 1, "only the live node that missed a beat counts");
    const itself = await heartbeatNode(db.pool, "gone-quiet", 5000);
    assert.ok(itself !== "unknown" && itself.quietNodes === 0, "a node never counts itself, and its beat makes it not quiet");
  });

  it("a beat records the clock skew it is given (keeps the last when given none) and returns the database's clock", async () => {
    await node("skewed");
    const skewOf = async () => (await q("select clock_skew_ms from scheduler.nodes where node_id = 'skewed'")).rows[0].clock_skew_ms as number | null;
    assert.equal(await skewOf(), null, "not measured yet");
    const { rows } = await q("select (extract(epoch from clock_timestamp()) * 1000)::float8 as before_ms");
    const verdict = await heartbeatNode(db.pool, "skewed", 5000, 99_876.4);
    const { rows: after } = await q("select (extract(epoch from clock_timestamp()) * 1000)::float8 as after_ms");
    assert.ok(verdict !== "unknown");
    assert.ok(verdict.databaseClockMs >= rows[0].before_ms && verdict.databaseClockMs <= after[0].after_ms, "the database's clock during the beat");
    assert.equal(await skewOf(), 99_876);
    // A node of the previous version beats as it did: two arguments, three columns.
    const old = await q("select was_dead_at, was_dead_by, quiet_nodes from scheduler.node_beat('skewed', interval '5 seconds')");
    assert.equal(old.rowCount, 1);
    assert.equal(await skewOf(), 99_876, "a beat without a measurement keeps the last one");
  });

  it("release_node frees what a stopping node's pool still holds and marks it stopped", async () => {
    await node("leaving", { pool: "pool-leaving" });
    const job = await lockedJob("pool-leaving", "q-leaving");
    const run = await runningRun("leaving", job);
    assert.deepEqual(await releaseNode(db.pool, "leaving"), { jobsReleased: [job], runsAbandoned: [run] });
    assert.equal(await jobLock(job), null);
    assert.equal((await runStatus(run)).status, "abandoned");
    assert.equal((await q("select stopped_at is not null as stopped from scheduler.nodes")).rows[0].stopped, true);
    assert.deepEqual(await rescueDeadNodes(db.pool, "other", 1, 1), [], "a stopped node is never rescued");
  });

  it("closes runs whose end was announced but whose outcome was never written, and nothing else", async () => {
    const lost = await runningRun("me", "101");
    const recorded = await runningRun("me", "102");
    await q("update scheduler.job_runs set status = 'success', finished_at = now() where id = $1", [recorded]);
    const stillRunning = await runningRun("me", "103");
    const othersRun = await runningRun("other", "104");
    assert.deepEqual(await closeLostRuns(db.pool, "me", [lost, recorded, othersRun]), [lost]);
    assert.match((await runStatus(lost)).error, /outcome could not be recorded/);
    assert.equal((await runStatus(recorded)).status, "success");
    assert.equal((await runStatus(stillRunning)).status, "running", "a run not announced as ended is left alone");
    assert.equal((await runStatus(othersRun)).status, "running", "another node's run is left alone");
  });

  it("prunes nodes and rescues older than the retention, in batches", async () => {
    for (let i = 0; i < 5; i++) await node(`old${i}`, { stopped: true });
    await node("current");
    await q("update scheduler.nodes set stopped_at = now() - interval '40 days' where node_id like 'old%'");
    await q("insert into scheduler.rescues (node_id, host, rescued_by, rescued_at, last_heartbeat_at) values ('x', 'h', 'y', now() - interval '40 days', now())");
    assert.equal(await pruneNodes(db.pool, 30, 2), 6);
    assert.deepEqual((await q("select node_id from scheduler.nodes")).rows, [{ node_id: "current" }]);
  });
});

describe("cluster settings", () => {
  it("refuses timings under which a late heartbeat would get a live node's jobs taken", () => {
    assert.throws(() => checkClusterSettings({ heartbeatMs: 5000, deadAfterMs: 10_000, rescueIntervalMs: 5000, giveUpMs: 60_000 }), /SCHEDULER_NODE_DEAD_AFTER_MS \(10000\) must be at least 3 × SCHEDULER_HEARTBEAT_MS \(5000\)/);
    assert.throws(() => checkClusterSettings({ heartbeatMs: 500, deadAfterMs: 3000, rescueIntervalMs: 5000, giveUpMs: 60_000 }), /SCHEDULER_RESCUE_INTERVAL_MS/);
    assert.throws(() => checkClusterSettings({ heartbeatMs: 500, deadAfterMs: 3000, rescueIntervalMs: 500, giveUpMs: 1000 }), /SCHEDULER_DB_GIVE_UP_MS/);
    checkClusterSettings({ heartbeatMs: 5000, deadAfterMs: 30_000, rescueIntervalMs: 5000, giveUpMs: 300_000 });
  });

  it("keeps the unique part of a node id within PostgreSQL's 63-byte application_name", () => {
    const name = applicationNameFor(`${"very-long-host-name.".repeat(6)}example:31337:a1b2c3`);
    assert.ok(Buffer.byteLength(name) <= 63);
    assert.ok(name.startsWith("sps-node 31337:a1b2c3 very-long-host-name."));
  });
});

describe("nodes command", () => {
  before(serverUpForTwelveSeconds);
  it("lists nodes with alive/dead/stopped, last heartbeat and the jobs each holds; --all adds stopped ones", async () => {
    await q("truncate scheduler.nodes, scheduler.rescues");
    await q("delete from graphile_worker._private_jobs");
    await node("alive-1", { pool: "pool-alive" });
    await node("silent-1", { pool: "pool-silent", silentMs: 120_000 });
    await node("gone-1", { stopped: true });
    await lockedJob("pool-alive", "q-a1");
    await lockedJob("pool-alive", "q-a2");
    const printed: string[] = [];
    const ctx: CliContext = {
      config: loadConfig({ SCHEDULER_NODE_DEAD_AFTER_MS: "10000" }),
      logger: testLogger,
      pool: async () => db.pool,
      print: (text) => printed.push(text),
    };
    assert.equal(await nodesCommand.run(ctx, { values: { json: true }, positionals: [] }), 0);
    const rows = JSON.parse(printed.join("\n")) as { node_id: string; state: string; running_jobs: number; silent_ms: number; pid: number }[];
    assert.deepEqual(rows.map((r) => [r.node_id, r.state, r.running_jobs, r.pid]), [["alive-1", "alive", 2, 4242], ["silent-1", "dead", 0, 4242]]);
    assert.ok(rows[1]!.silent_ms >= 119_000);
    printed.length = 0;
    // "alive-1 … N ms ago": its heartbeat must be under a second old when the table is printed;
    // the beat records its clock as 100.24 s behind the database's.
    await heartbeatNode(db.pool, "alive-1", 5000, -100_240);
    await nodesCommand.run(ctx, { values: { all: true }, positionals: [] });
    const table = printed.join("\n");
    assert.match(table, /NODE\s+HOST\s+PID\s+STARTED\s+LAST HEARTBEAT\s+STATE\s+RUNNING JOBS\s+CLOCK\s+RESCUED BY/);
    assert.match(table, /alive-1\s+h-alive-1\s+4242\s+\d{4}-\d\d-\d\dT\S+Z\s+\d+ ms ago\s+alive\s+2\s+-100\.2 s\s/);
    assert.match(table, /silent-1 .* 0\s+-\s+-/, "a node that never measured its clock: -");
    assert.match(table, /silent-1 .* 2 min ago\s+dead \(rescue pending\)/);
    assert.match(table, /gone-1 .* stopped/);
    assert.match(table, /1 alive, 2 not alive/);
  });
});
