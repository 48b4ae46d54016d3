// Nodes whose clocks are 100 s off the database's (libfaketime, real node processes): a node
// behind alone, a node ahead alone, and one of each together, each on a database of its own,
// all through the same minute boundaries. Every tick must start within 5 s of its time by the
// database's clock, once, and never be queued before it; `nodes`, the log and /metrics must
// show the skew. Heavy (two real minutes): CI runs it once (TEST_SCENARIOS=skip on the other pass).
import assert from "node:assert/strict";
import path from "node:path";
import { after, describe, it } from "node:test";
import { runCliProcess } from "../../helpers/cli.ts";
import { useTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { faketimeLibrary, skewedClockEnv } from "../../helpers/faketime.ts";
import { parsePrometheus } from "../../helpers/prometheus.ts";
import { eventually } from "../../helpers/wait.ts";
import { scenarioSkip } from "./failover-scenarios.ts";
import { fixtures, freePort, NodeProcess, runs } from "./harness.ts";

const MINUTE = 60_000;
const SKEW_S = 100;
/** The most a tick may start after its time (database's clock), and how close the measured skew must be. */
const ON_TIME_MS = 5000;

const behindAlone = useTestDatabase();
const aheadAlone = useTestDatabase();
const together = useTestDatabase();
const databases: [string, TestDatabase][] = [["behind alone", behindAlone], ["ahead alone", aheadAlone], ["together", together]];

const nodes: NodeProcess[] = [];
after(async () => {
  await Promise.all(nodes.map((node) => node.stop()));
});

/** When each job was queued, by the database's clock: no tick may be queued before its time. */
async function recordQueueing(db: TestDatabase): Promise<void> {
  await db.pool.query(`
    create table test_queued (tick timestamptz, run_at timestamptz, queued_at timestamptz not null);
    create function test_record_queued() returns trigger language plpgsql as $$
    begin
      insert into test_queued values ((new.payload->'_cron'->>'ts')::timestamptz, new.run_at, clock_timestamp());
      return null;
    end $$;
    create trigger test_record_queued after insert on graphile_worker._private_jobs for each row execute function test_record_queued();`);
}

async function startNode(name: string, db: TestDatabase, offsetS: number): Promise<{ node: NodeProcess; http: string }> {
  const http = `127.0.0.1:${await freePort()}`;
  const node = new NodeProcess(name, {
    DATABASE_URL: db.connectionString,
    SCHEDULER_HOST: name,
    SCHEDULER_CRONTAB: path.join(fixtures, "crontab.minutely"),
    SCHEDULER_HTTP_ADDR: http,
    ...skewedClockEnv(offsetS),
  });
  nodes.push(node);
  return { node, http };
}

const databaseNow = async (db: TestDatabase) => (await db.pool.query<{ now: Date }>("select clock_timestamp() as now")).rows[0]!.now.getTime();

describe("nodes whose clocks are 100 s off the database's", { skip: scenarioSkip() || (!faketimeLibrary && "libfaketime is not installed: apt-get install faketime (.ci/run does)") }, () => {
  it("start every tick within 5 s of its time by the database's clock, exactly once, never early; nodes, the log and /metrics show the skew", async () => {
    for (const [, db] of databases) await recordQueueing(db);
    const started = await Promise.all([
      startNode("behind", behindAlone, -SKEW_S),
      startNode("ahead", aheadAlone, SKEW_S),
      startNode("behind-2", together, -SKEW_S),
      startNode("ahead-2", together, SKEW_S),
    ]);
    await Promise.all(started.map(({ node }) => node.started()));
    // Two ticks after every node runs: the first boundary after that, and the next.
    const first = Math.ceil((await databaseNow(behindAlone)) / MINUTE) * MINUTE;
    const ticks = [first, first + MINUTE];

    // The skew, where an operator looks: the log (once), /metrics, `nodes`.
    for (const { node, http } of started) {
      const direction = node.name.startsWith("behind") ? "behind" : "ahead of";
      const sign = node.name.startsWith("behind") ? -1 : 1;
      const warnings = node.logs.filter((line) => line.level === 40 && /this node's clock is \d+\.\d s (behind|ahead of) the database's/.test(line.msg));
      assert.equal(warnings.length, 1, `${node.name}: one warning`);
      assert.match(warnings[0]!.msg, new RegExp(`this node's clock is (99|100|101)\\.\\d s ${direction} the database's`));
      const metrics = parsePrometheus(await (await fetch(`http://${http}/metrics`)).text());
      const gauge = metrics.find((sample) => sample.name === "scheduler_node_clock_skew_seconds")?.value;
      assert.ok(gauge !== undefined && Math.abs(gauge - sign * SKEW_S) < 2, `${node.name}: scheduler_node_clock_skew_seconds ${gauge}`);
    }
    const listed = await eventually(async () => {
      const result = await runCliProcess(["nodes", "--json"], { DATABASE_URL: together.connectionString });
      assert.equal(result.code, 0, result.stderr);
      const rows = JSON.parse(result.stdout) as { host: string; clock_skew_ms: number | null }[];
      return rows.length === 2 && rows.every((row) => row.clock_skew_ms !== null) && rows;
    }, { what: "both nodes' skew in `nodes`", timeoutMs: 15_000, intervalMs: 500 });
    const skewOf = (host: string) => listed.find((row) => row.host === host)!.clock_skew_ms!;
    assert.ok(Math.abs(skewOf("behind-2") + SKEW_S * 1000) < 2000, `behind-2: ${skewOf("behind-2")} ms`);
    assert.ok(Math.abs(skewOf("ahead-2") - SKEW_S * 1000) < 2000, `ahead-2: ${skewOf("ahead-2")} ms`);
    const table = await runCliProcess(["nodes"], { DATABASE_URL: together.connectionString });
    assert.match(table.stdout, /behind-2 .* -(99|100|101)\.\d s/);
    assert.match(table.stdout, /ahead-2 .* \+(99|100|101)\.\d s/);

    // Each database: both ticks run, each once, on time, none queued early.
    const last = ticks[1]!;
    for (const [name, db] of databases) {
      const rows = await eventually(async () => {
        const found = await runs(db.pool, "task = 'tick' and status = 'success'");
        return found.some((row) => row.scheduled_for?.getTime() === last) && found;
      }, { what: `${name}: the tick at ${new Date(last).toISOString()} to run`, timeoutMs: last - (await databaseNow(db)) + 20_000, intervalMs: 500 });
      const perTick = new Map<number, number>();
      for (const row of rows) perTick.set(row.scheduled_for!.getTime(), (perTick.get(row.scheduled_for!.getTime()) ?? 0) + 1);
      for (const tick of ticks) assert.equal(perTick.get(tick), 1, `${name}: the tick at ${new Date(tick).toISOString()} ran once`);
      for (const row of rows) {
        const lateMs = row.started_at.getTime() - row.scheduled_for!.getTime();
        assert.ok(lateMs >= 0 && lateMs < ON_TIME_MS, `${name}: the tick at ${row.scheduled_for!.toISOString()} started ${lateMs} ms after it (on ${row.node_id})`);
      }
      const { rows: queued } = await db.pool.query<{ tick: Date; run_at: Date; queued_at: Date }>("select tick, run_at, queued_at from test_queued where tick is not null order by tick");
      assert.ok(queued.length >= ticks.length, `${name}: ${queued.length} ticks queued`);
      for (const job of queued) {
        assert.ok(job.queued_at >= job.tick, `${name}: the tick at ${job.tick.toISOString()} was queued at ${job.queued_at.toISOString()}, before its time`);
        assert.equal(job.run_at.getTime(), job.tick.getTime());
      }
      const { rows: late } = await db.pool.query("select job_name from scheduled_jobs where late");
      assert.deepEqual(late, [], `${name}: no schedule flagged late`);
    }

    for (const { node } of started) assert.equal(await node.stop(), 0, `${node.name} exits 0`);
  });
});
