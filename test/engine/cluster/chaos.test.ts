// Two real nodes on a PostgreSQL this test owns (embedded, temp folder, free port,
// max_connections 40), put through what kills schedulers: a stream of pg_terminate_backend,
// a server whose connections are nearly all taken, a restart of PostgreSQL across a cron tick,
// and finally its disappearance. Each scenario reports jobs lost, duplicate runs, recovery time.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import pg from "pg";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../../src/engine/db/embedded/index.ts";
import { testLogger } from "../../helpers/db.ts";
import { eventually, sleep } from "../../helpers/wait.ts";
import { feedJobs, freePort, NodeProcess, overlaps, queueState, runs, tally, tickTally } from "./harness.ts";

const GIVE_UP_MS = 12_000;
let dataDir: string;
let port: number;
let server: EmbeddedPostgres;
let url: string;
let db: pg.Pool;
let nodes: NodeProcess[] = [];
let httpPort: number;
const probe = async (pathname: string) => {
  const response = await fetch(`http://127.0.0.1:${httpPort}${pathname}`, { signal: AbortSignal.timeout(5000) });
  return { status: response.status, body: await response.text() };
};

async function startServer(): Promise<void> {
  server = await startEmbeddedPostgres({ dataDir, port, logger: testLogger });
}

const rescues = async () => (await db.query("select count(*)::int as n from scheduler.rescues")).rows[0].n as number;
const killNodeSessions = async () =>
  (await db.query("select count(*) filter (where pg_terminate_backend(pid))::int as n from pg_stat_activity where datname = 'chaos' and application_name like 'sps-node %'")).rows[0].n as number;

async function drained(timeoutMs: number): Promise<number> {
  const started = Date.now();
  try {
    await eventually(async () => {
      const state = await queueState(db);
      return state.queued === 0 && state.locked === 0 && state.lockedQueues === 0;
    }, { timeoutMs, intervalMs: 200, what: "the queue to drain with nothing locked" });
  } catch (error) {
    // What is left, and where each node stands, so that a failure here can be diagnosed.
    const left = await db.query(
      `select j.id, j.task_identifier, j.queue_name, j.attempts, j.max_attempts, round(extract(epoch from j.run_at - now()))::int as due_in_s,
              j.locked_at, j.locked_by, left(j.last_error, 200) as last_error, (select count(*) from scheduler.lock_waiters w where w.job_id = j.id)::int as waiting_for_lock
       from graphile_worker.jobs j order by j.id`,
    );
    const queues = await db.query("select queue_name, locked_at, locked_by from graphile_worker._private_job_queues where locked_at is not null");
    const nodeState = await db.query("select node_id, worker_pool_id, last_heartbeat_at, stopped_at from scheduler.nodes");
    throw new Error(`${(error as Error).message}\njobs left: ${JSON.stringify(left.rows)}\nlocked queues: ${JSON.stringify(queues.rows)}\nnodes: ${JSON.stringify(nodeState.rows)}\nnode logs (tail): ${nodes.map((node) => node.stderrTail).join("\n---\n")}`);
  }
  return Date.now() - started;
}

async function checkJobs(t: TestContext, scenario: string, prefix: string, tags: string[], recoveryMs: number): Promise<void> {
  const rows = await runs(db, "payload->>'tag' like $1", [`${prefix}-%`]);
  const { lost, duplicates } = tally(rows, tags);
  assert.deepEqual(lost, [], "every queued job ran");
  assert.deepEqual(duplicates, [], "no job succeeded twice");
  assert.deepEqual(rows.filter((row) => row.status === "running").map((row) => row.id), [], "no run left marked running");
  assert.deepEqual(overlaps(await runs(db, "task like 'work_%'")), []);
  assert.deepEqual(nodes.map((node) => node.exitCode), [undefined, undefined], `both nodes still running; their logs (tail):\n${nodes.map((node) => `${node.name}: ${node.stderrTail}`).join("\n---\n")}`);
  t.diagnostic(`${scenario}, ${tags.length} jobs: jobs lost ${lost.length}, duplicate runs ${duplicates.length}, recovery ${(recoveryMs / 1000).toFixed(1)} s`);
}

describe("two nodes on a PostgreSQL that fails", () => {
  before(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-chaos-"));
    fs.chmodSync(dir, 0o755);
    dataDir = path.join(dir, "data");
    port = await freePort();
    await startServer();
    const admin = new pg.Client({ connectionString: server.connectionString });
    await admin.connect();
    await admin.query("alter system set max_connections = 40");
    await admin.query("create database chaos");
    await admin.end();
    await server.stop();
    await startServer();
    url = server.connectionString.replace(/\/postgres$/, "/chaos");
    // The test's own connections stay open, so it can still watch while the server is full.
    db = new pg.Pool({ connectionString: url, max: 3, idleTimeoutMillis: 0, application_name: "cluster-test" });
    db.on("error", () => {});
    const warm = await Promise.all([db.connect(), db.connect(), db.connect()]);
    for (const client of warm) client.release();
    httpPort = await freePort();
    // Node 1 serves HTTP, so /readyz is seen from outside while the database is away.
    nodes = [1, 2].map((i) => new NodeProcess(`chaos${i}`, { DATABASE_URL: url, SCHEDULER_HOST: `chaos-${i}`, SCHEDULER_DB_GIVE_UP_MS: String(GIVE_UP_MS), SCHEDULER_HTTP_ADDR: i === 1 ? `127.0.0.1:${httpPort}` : "off" }));
    await Promise.all(nodes.map((node) => node.started()));
  });
  after(async () => {
    for (const node of nodes) node.kill("SIGKILL");
    await Promise.all(nodes.map((node) => node.exited));
    await db?.end().catch(() => {});
    await server?.stop();
    fs.rmSync(path.dirname(dataDir), { recursive: true, force: true });
  });

  it("keeps going through a stream of pg_terminate_backend against every node connection", async (t) => {
    const feeder = feedJobs(db, "storm");
    let killed = 0;
    const stormEnds = Date.now() + 8000;
    while (Date.now() < stormEnds) {
      killed += await killNodeSessions();
      await sleep(400);
    }
    const tags = await feeder.stop();
    const recoveryMs = await drained(30_000);
    assert.ok(killed > 100, `${killed} sessions terminated`);
    assert.equal(await rescues(), 0, "no node was declared dead: each heartbeat reconnects at once");
    for (const node of nodes) assert.ok(node.logged(/lost the database connection/).length > 0, `${node.name} logged the lost connection`);
    const healed = nodes.flatMap((node) => node.logged(/outcome could not be recorded/)).length;
    t.diagnostic(`runs whose outcome write was cut, closed as abandoned by their node: ${healed} pass(es) logged`);
    await checkJobs(t, `storm of ${killed} terminated sessions`, "storm", tags, recoveryMs);
  });

  it("waits while other clients hold nearly every connection, and recovers on its own", async (t) => {
    const hogs: pg.Client[] = [];
    const fillUp = async () => {
      for (;;) {
        const hog = new pg.Client({ connectionString: url, application_name: "hog" });
        hog.on("error", () => {});
        try {
          await hog.connect();
          hogs.push(hog);
        } catch (error) {
          assert.match((error as Error).message, /too many clients/);
          return;
        }
      }
    };
    // Take every free slot, cut the nodes' sessions, take the slots they freed, then leave two:
    // the nodes must queue for those two (heartbeats included).
    await fillUp();
    const cut = await killNodeSessions();
    await fillUp();
    await Promise.all(hogs.splice(0, 2).map((hog) => hog.end()));
    const feeder = feedJobs(db, "full");
    await sleep(8000);
    const whileFull = (await runs(db, "payload->>'tag' like 'full-%' and status = 'success'")).length;
    await Promise.all(hogs.map((hog) => hog.end()));
    const tags = await feeder.stop();
    const recoveryMs = await drained(30_000);
    const waited = nodes.flatMap((node) => node.logged(/waiting for a database connection|lost the database connection/));
    assert.ok(waited.length > 0, "the nodes said they were waiting for connections");
    const rescued = await db.query<{ node_id: string }>("select node_id from scheduler.rescues");
    t.diagnostic(
      `server full: ${hogs.length} of 40 connections held by others, ${cut} node sessions cut, 2 slots left: ${whileFull} of ${tags.length} jobs ran meanwhile; ` +
        `nodes declared dead while starved of connections: ${rescued.rows.length}`,
    );
    await checkJobs(t, "nearly all connections taken", "full", tags, recoveryMs);
  });

  it("reconnects after PostgreSQL restarts across a cron tick: no job lost, no tick lost or doubled, nobody rescued", async (t) => {
    // Stop the server a few seconds before a minute boundary, so that the tick falls in the outage.
    await eventually(async () => new Date().getUTCSeconds() >= 52 && new Date().getUTCSeconds() < 56, { timeoutMs: 65_000, intervalMs: 200, what: "second 52" });
    const tickInOutage = new Date(Math.ceil(Date.now() / 60_000) * 60_000);
    const rescuesBefore = await rescues();
    const feeder = feedJobs(db, "restart");
    await sleep(500);
    await server.stop();
    const stoppedAt = Date.now();
    // A probe during the outage: not ready, saying why; the process and its metrics still answer.
    const during = await eventually(async () => {
      const ready = await probe("/readyz");
      return ready.status === 503 && /the database does not answer/.test(ready.body) && ready;
    }, { timeoutMs: 4000, intervalMs: 250, what: "/readyz to say the database does not answer" });
    assert.equal((await probe("/healthz")).status, 200);
    assert.equal((await probe("/metrics")).status, 200, "/metrics answers with the last values");
    await sleep(Math.max(0, 5000 - (Date.now() - stoppedAt)));
    await startServer();
    const backAt = Date.now();
    await sleep(1000);
    const tags = await feeder.stop();
    await eventually(async () => (await runs(db, "task = 'tick' and scheduled_for = $1 and status = 'success'", [tickInOutage])).length === 1, {
      timeoutMs: 20_000,
      what: "the tick that fell in the outage",
    });
    await drained(30_000);
    const recoveryMs = Date.now() - backAt;
    await eventually(async () => (await probe("/readyz")).status === 200, { timeoutMs: 10_000, what: "/readyz to be 200 again" });
    t.diagnostic(`/readyz during the outage: ${during.status} ${during.body.trim()}`);
    assert.equal(await rescues(), rescuesBefore, "a restart of PostgreSQL silences every node at once; none is declared dead");
    const ticks = tickTally(await runs(db, "task = 'tick'"));
    assert.deepEqual(ticks.missing, [], "no tick missing since the nodes started");
    assert.deepEqual(ticks.duplicates, [], "no tick run twice");
    t.diagnostic(`cron: ${ticks.ticks} ticks since start, the one at ${tickInOutage.toISOString()} fell in the outage: lost ${ticks.missing.length}, doubled ${ticks.duplicates.length}`);
    await checkJobs(t, "PostgreSQL restarted (5 s down)", "restart", tags, recoveryMs);
  });

  it("exits non-zero with a clear message when the database is gone for good; a SIGTERM meanwhile still stops at once", async (t) => {
    const [waiting, stopped] = nodes as [NodeProcess, NodeProcess];
    await db.end();
    // The nodes may lose the database as soon as the server starts shutting down: the give-up
    // time is counted from then (their first failed heartbeat), not from when stop() returned.
    const stopping = Date.now();
    await server.stop();
    const goneAt = Date.now();
    await sleep(2000);
    stopped.kill("SIGTERM");
    const stopCode = await stopped.exited;
    const stopMs = Date.now() - goneAt - 2000;
    assert.equal(stopCode, 0);
    assert.ok(stopMs < 8000, `stopped ${stopMs} ms after SIGTERM, not after the give-up time`);
    assert.ok(stopped.logged(/could not deregister the node/).length === 1, "said it could not deregister");

    assert.equal(await waiting.exited, 1);
    const exitMs = Date.now() - stopping;
    assert.ok(exitMs >= GIVE_UP_MS && exitMs < GIVE_UP_MS + 20_000, `exited ${exitMs} ms after the database went away`);
    const [fatal] = waiting.logs.filter((line) => line.level >= 60);
    assert.match(fatal?.msg ?? waiting.stderrTail, new RegExp(`no answer from PostgreSQL at 127\\.0\\.0\\.1:${port}/chaos for \\d+ s .*; this node stops`));
    t.diagnostic(`database gone: the node exited 1 after ${(exitMs / 1000).toFixed(1)} s (give-up ${GIVE_UP_MS / 1000} s; the server took ${((goneAt - stopping) / 1000).toFixed(1)} s to stop); the one sent SIGTERM stopped in ${(stopMs / 1000).toFixed(1)} s`);
  });
});
