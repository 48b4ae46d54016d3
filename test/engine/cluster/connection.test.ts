import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pg from "pg";
import { databaseClock } from "../../../src/engine/cluster/clock.ts";
import { DatabaseHealth } from "../../../src/engine/cluster/health.ts";
import { isConnectionError } from "../../../src/engine/db/connection-errors.ts";
import { startHeartbeat } from "../../../src/engine/cluster/heartbeat.ts";
import { registerNode } from "../../../src/engine/cluster/nodes.ts";
import { makePoolPatient } from "../../../src/engine/cluster/patient-pool.ts";
import { createConnector } from "../../../src/engine/db/connector.ts";
import { createPool } from "../../../src/engine/db/pool.ts";
import type { SchedulerError } from "../../../src/engine/errors.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually, sleep } from "../../helpers/wait.ts";

const db = useTestDatabase();
const unreachable = "postgres://postgres:x@127.0.0.1:1/nowhere";

function health(options: { giveUpMs?: number; target?: string } = {}) {
  const givenUp: SchedulerError[] = [];
  const state = new DatabaseHealth({
    connectionTarget: options.target ?? createConnector(db.connectionString).target,
    logger: testLogger,
    giveUpMs: options.giveUpMs ?? 60_000,
    startedHealthySince: Date.now(),
    onGiveUp: (error) => givenUp.push(error),
  });
  return { state, givenUp };
}

/**
 * Terminates backend `pid` once it is running its pg_sleep: a fixed delay could fire before
 * the statement reached the server or, on a loaded machine, after it had already finished.
 */
const terminateWhileSleeping = (pid: number) =>
  eventually(async () => (await db.pool.query("select pg_terminate_backend(pid) as cut from pg_stat_activity where pid = $1 and state = 'active' and query like '%pg_sleep%'", [pid])).rows[0]?.cut === true, {
    intervalMs: 20,
    what: `backend ${pid} to be in pg_sleep`,
  });

const terminate = (applicationName: string) =>
  db.pool.query("select count(*) filter (where pg_terminate_backend(pid))::int as n from pg_stat_activity where application_name = $1", [applicationName]);

describe("heartbeat connection", () => {
  it("beats on its own connection, reconnects when that connection is terminated, and reports the outage; each beat measures the clock", async () => {
    const node = { nodeId: "hb-node", host: "h", version: "t", applicationName: "sps-node test hb" };
    await registerNode(db.pool, node);
    const { state } = health();
    const clock = databaseClock({ logger: testLogger });
    const beat = startHeartbeat({ connector: createConnector(db.connectionString), node, intervalMs: 100, health: state, logger: testLogger, clock });
    const lastBeat = async () => (await db.pool.query("select last_heartbeat_at from scheduler.nodes where node_id = 'hb-node'")).rows[0].last_heartbeat_at as Date;
    try {
      await eventually(async () => (await terminate(node.applicationName)).rows[0].n === 1, { what: "the heartbeat connection to exist" });
      const afterKill = new Date();
      await eventually(async () => (await lastBeat()) > afterKill, { timeoutMs: 5000, what: "a heartbeat after the connection was terminated" });
      assert.equal(state.downSince, null, "healthy again");
      // The same machine's clock: a skew of a few ms at most, recorded by the beat after the measurement.
      const { clock_skew_ms: recorded } = await eventually(async () => {
        const row = (await db.pool.query<{ clock_skew_ms: number | null }>("select clock_skew_ms from scheduler.nodes where node_id = 'hb-node'")).rows[0]!;
        return row.clock_skew_ms !== null && row;
      }, { what: "a recorded clock skew" });
      assert.ok(Math.abs(recorded!) < 50 && Math.abs(clock.skewMs()!) < 50, `skew ${recorded} ms recorded, ${clock.skewMs()} ms measured`);
    } finally {
      await beat.stop();
    }
    const stoppedAt = await lastBeat();
    await sleep(300);
    assert.deepEqual(await lastBeat(), stoppedAt, "no beat after stop()");
  });

  it("gives up after the give-up time without the database, with an error naming it", async () => {
    const { state, givenUp } = health({ giveUpMs: 1000, target: createConnector(unreachable).target });
    const started = Date.now();
    const node = { nodeId: "lost", host: "h", version: "t", applicationName: "x" };
    const beat = startHeartbeat({ connector: createConnector(unreachable), node, intervalMs: 100, health: state, logger: testLogger, clock: databaseClock({ logger: testLogger }) });
    await eventually(async () => givenUp.length === 1, { timeoutMs: 5000, what: "the heartbeat to give up" });
    await beat.stop();
    assert.ok(Date.now() - started >= 1000);
    assert.match(givenUp[0]!.message, /no answer from PostgreSQL at 127\.0\.0\.1:1\/nowhere for \d+ s \(last error: .*ECONNREFUSED.*\); this node stops/);
    assert.match(givenUp[0]!.describe(), /fix: start PostgreSQL or fix DATABASE_URL/);
  });
});

describe("patient pool", () => {
  it("re-sends graphile-worker's idempotent statements on a fresh connection when theirs is cut, but never job SQL", async () => {
    const pool = createPool(db.connectionString, { max: 4, applicationName: "sps-node test patient" });
    makePoolPatient(pool, health().state);
    try {
      const client = await pool.connect();
      const pid = (await client.query("select pg_backend_pid() as pid")).rows[0].pid as number;
      const killSoon = terminateWhileSleeping(pid);
      const completed = await client.query({ name: "complete_job/graphile_worker", text: "select pg_sleep(2), pg_backend_pid() as pid" });
      await killSoon;
      assert.notEqual(completed.rows[0].pid, pid, "re-sent on another connection");
      client.release(true);

      const jobClient = await pool.connect();
      const jobPid = (await jobClient.query("select pg_backend_pid() as pid")).rows[0].pid as number;
      const killJob = terminateWhileSleeping(jobPid);
      await assert.rejects(() => jobClient.query("select pg_sleep(2)"), (error) => isConnectionError(error));
      await killJob;
      jobClient.release(true);

      const viaPool = await pool.query({ name: "cron/graphile_worker", text: "select 1 as one" });
      assert.equal(viaPool.rows[0].one, 1);
    } finally {
      await pool.end();
    }
  });

  it("waits out an unreachable server instead of failing, until the node gives up on it", async () => {
    const { state } = health({ giveUpMs: 1000, target: createConnector(unreachable).target });
    const pool = createPool(unreachable, { max: 2 });
    makePoolPatient(pool, state);
    const started = Date.now();
    let settled = false;
    const waiting = pool.query("select 1").finally(() => (settled = true));
    await sleep(800);
    assert.equal(settled, false, "still waiting for the database");
    state.down(new Error("connect ECONNREFUSED"));
    await sleep(1100);
    state.down(new Error("connect ECONNREFUSED"));
    await assert.rejects(waiting, /no answer from PostgreSQL at 127\.0\.0\.1:1\/nowhere/);
    assert.ok(Date.now() - started < 10_000);
    await pool.end();
  });

  it("still fails at once on errors that waiting cannot fix", async () => {
    const wrongDatabase = new URL(db.connectionString);
    wrongDatabase.pathname = "/no_such_database_here";
    const pool = createPool(wrongDatabase.toString(), { max: 1 });
    makePoolPatient(pool, health().state);
    const started = Date.now();
    await assert.rejects(() => pool.query("select 1"), /does not exist/);
    assert.ok(Date.now() - started < 3000);
    await pool.end();
    await assert.rejects(() => pool.query("select 1"), /Cannot use a pool after calling end/);
  });
});
