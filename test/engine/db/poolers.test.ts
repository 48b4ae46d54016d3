// Nodes behind a real PgBouncer: session pooling works end to end (jobs from the CLI, cron
// ticks, pause, rescue of a killed node, the CLI); transaction and statement pooling are
// refused at start, before any job is taken, with what to use instead.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createConnector } from "../../../src/engine/db/connector.ts";
import { probeSessionPooling } from "../../../src/engine/db/session-check.ts";
import { runCliProcess } from "../../helpers/cli.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { pgbouncerBinary, startPgBouncer, type PgBouncer } from "../../helpers/pgbouncer.ts";
import { eventually } from "../../helpers/wait.ts";
import { addJob, DEAD_AFTER_MS, NodeProcess, runs } from "../cluster/harness.ts";

const db = useTestDatabase();
const skip = pgbouncerBinary ? false : "pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)";

describe("connection poolers", { skip }, () => {
  const bouncers: Partial<Record<"session" | "transaction" | "statement", PgBouncer>> = {};
  const nodes: NodeProcess[] = [];

  before(async () => {
    [bouncers.session, bouncers.transaction, bouncers.statement] = await Promise.all([startPgBouncer("session"), startPgBouncer("transaction"), startPgBouncer("statement")]);
  });
  after(async () => {
    for (const node of nodes) node.kill("SIGKILL");
    await Promise.all(nodes.map((node) => node.exited));
    await Promise.all(Object.values(bouncers).map((bouncer) => bouncer.stop()));
  });

  it("tells a real session (direct or session pooling) from transaction and statement pooling", async () => {
    assert.deepEqual(await probeSessionPooling(createConnector(db.connectionString)), { ok: true });
    assert.deepEqual(await probeSessionPooling(createConnector(bouncers.session!.urlFor(db.name))), { ok: true });
    const transaction = await probeSessionPooling(createConnector(bouncers.transaction!.urlFor(db.name)));
    assert.equal(transaction.ok ? "ok" : transaction.mode, "transaction");
    const statement = await probeSessionPooling(createConnector(bouncers.statement!.urlFor(db.name)));
    assert.equal(statement.ok ? "ok" : statement.mode, "statement");
  });

  for (const mode of ["transaction", "statement"] as const) {
    it(`refuses to start a node through ${mode} pooling, at once and before any job is taken`, async () => {
      const waiting = await addJob(db.pool, "slow", { ms: 10, tag: `waiting-${mode}` });
      const result = await runCliProcess(["start"], {
        DATABASE_URL: bouncers[mode]!.urlFor(db.name),
        SCHEDULER_TASKS_DIR: "test/engine/cluster/fixtures/tasks",
        SCHEDULER_CRONTAB: "test/engine/cluster/fixtures/crontab.fill",
        SCHEDULER_BOOTSTRAP_JOBS: ",",
        SCHEDULER_RECONCILE_SERVICES: "false",
      }, 30_000);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`pooler in ${mode} mode`));
      assert.match(result.stderr, /pool_mode = session/);
      assert.ok(result.ms < 10_000, `refused within ${result.ms} ms`);
      const { rows } = await db.pool.query("select attempts, locked_at from graphile_worker.jobs where id = $1", [waiting]);
      assert.deepEqual(rows[0], { attempts: 0, locked_at: null }, "the queued job was not touched");
      await db.pool.query("select graphile_worker.permanently_fail_jobs(array[$1]::bigint[], 'test cleanup')", [waiting]);
    });
  }

  it("lets CLI commands that need no session use a transaction pool", async () => {
    const status = await runCliProcess(["status", "--json"], { DATABASE_URL: bouncers.transaction!.urlFor(db.name) });
    assert.equal(status.code, 0, status.stderr);
  });

  it("runs nodes through session pooling: CLI runs, cron ticks (with backfill), pause, rescue of a killed node", async () => {
    const url = bouncers.session!.urlFor(db.name);
    // `* * * * * tick ?fill=30m` last ran 3 minutes ago: the node fills the missed ticks.
    const lastTick = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 3 * 60_000);
    await db.pool.query("insert into graphile_worker._private_known_crontabs (identifier, known_since, last_execution) values ('tick', now() - interval '1 hour', $1) on conflict (identifier) do update set last_execution = excluded.last_execution", [lastTick]);
    const a = new NodeProcess("a", { DATABASE_URL: url, SCHEDULER_HOST: "pool-a", SCHEDULER_RECONCILE_SERVICES: "false" });
    nodes.push(a);
    await a.started(60_000);

    const env = { DATABASE_URL: url, SCHEDULER_TASKS_DIR: "test/engine/cluster/fixtures/tasks", SCHEDULER_CRONTAB: "test/engine/cluster/fixtures/crontab.fill" };
    const ran = await runCliProcess(["run", "slow", "--payload", '{"ms": 20, "tag": "via-cli"}', "--wait", "--json"], env);
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(JSON.parse(ran.stdout).status, "success");

    await eventually(async () => (await runs(db.pool, "task = 'tick' and status = 'success' and scheduled_for > $1", [lastTick])).length >= 3, { timeoutMs: 30_000, what: "the missed ticks to run" });

    const paused = await runCliProcess(["pause", "slow", "--reason", "through the pool"], env);
    assert.equal(paused.code, 0, paused.stderr);
    const skipped = await addJob(db.pool, "slow", { ms: 10, tag: "while-paused" });
    await eventually(async () => (await db.pool.query("select 1 from graphile_worker.jobs where id = $1", [skipped])).rowCount === 0, { timeoutMs: 15_000, what: "the paused run to be skipped" });
    assert.deepEqual(await runs(db.pool, "coalesce(details->>'tag', payload->>'tag') = 'while-paused' and status = 'success'"), []);
    assert.equal((await runCliProcess(["resume", "slow"], env)).code, 0);

    // Rescue: whichever node takes a long job is killed; the other runs it again.
    const b = new NodeProcess("b", { DATABASE_URL: url, SCHEDULER_HOST: "pool-b", SCHEDULER_RECONCILE_SERVICES: "false" });
    nodes.push(b);
    await b.started(60_000);
    await addJob(db.pool, "slow", { ms: 60_000, tag: "rescued" });
    const holder = await eventually(async () => (await runs(db.pool, "coalesce(details->>'tag', payload->>'tag') = 'rescued' and status = 'running'"))[0]?.node_id, { timeoutMs: 15_000, what: "a node to take the long job" });
    const [victim, survivor] = holder === a.nodeId ? [a, b] : [b, a];
    victim.kill("SIGKILL");
    await victim.exited;
    await eventually(async () => (await db.pool.query("select 1 from scheduler.rescues where node_id = $1 and rescued_by = $2", [victim.nodeId, survivor.nodeId])).rowCount === 1, { timeoutMs: DEAD_AFTER_MS + 20_000, what: "the survivor to rescue the killed node" });
    await eventually(async () => (await runs(db.pool, "coalesce(details->>'tag', payload->>'tag') = 'rescued' and status = 'running' and node_id = $1", [survivor.nodeId])).length === 1, { timeoutMs: 20_000, what: "the survivor to run the rescued job" });
    await db.pool.query("update graphile_worker._private_jobs set max_attempts = attempts where payload->>'tag' = 'rescued'");
    const code = await survivor.stop(30_000);
    assert.equal(code, 0, survivor.stderrTail);
  });
});
