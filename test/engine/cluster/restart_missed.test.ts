// A node stopped before its entries' first tick, every node down across it, and a node
// started after it (real node processes, real minutes): the tick that passed is recorded
// missed once, by the time the new node says it started, and neither entry (one every minute,
// one every ten minutes, both with a grace of 1 s) is shown late for it; the next tick runs.
// Heavy (up to about three real minutes): CI runs it once (TEST_SCENARIOS=skip on the
// other pass).
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { runCliProcess } from "../../helpers/cli.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";
import { scenarioSkip } from "./failover-scenarios.ts";
import { NodeProcess } from "./harness.ts";

const MINUTE = 60_000;
const db = useTestDatabase();
const nodes: NodeProcess[] = [];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "restart-missed-"));
after(async () => {
  await Promise.all(nodes.map((node) => node.stop()));
  fs.rmSync(dir, { recursive: true, force: true });
});

const databaseNow = async () => (await db.pool.query<{ now: Date }>("select clock_timestamp() as now")).rows[0]!.now.getTime();
async function untilDatabaseTime(ms: number): Promise<void> {
  await eventually(async () => (await databaseNow()) >= ms, { timeoutMs: Math.max(5000, ms - Date.now() + 30_000), intervalMs: 200, what: `the database's clock to reach ${new Date(ms).toISOString()}` });
}
const view = async (job: string) => (await db.pool.query("select late, late_since, missed_count, run_count from scheduled_jobs where job_name = $1", [job])).rows[0];
const rowsOf = async (job: string) =>
  (await db.pool.query<{ scheduled_for: Date; status: string }>("select scheduled_for, status from scheduler.job_runs where job_name = $1 and scheduled_for is not null order by scheduled_for, id", [job])).rows;

function startNode(name: string, crontab: string): NodeProcess {
  const node = new NodeProcess(name, { DATABASE_URL: db.connectionString, SCHEDULER_HOST: name, SCHEDULER_CRONTAB: crontab, SCHEDULER_HTTP_ADDR: "off" });
  nodes.push(node);
  return node;
}

describe("a restart across an entry's first tick", { skip: scenarioSkip() }, () => {
  it("records the passed tick missed at once, shows no entry late for it, and runs the next one", async () => {
    // Room for a node to start and stop before the next minute turns (50 s: CI runs this
    // beside other heavy scenario tests).
    const now = await databaseNow();
    if (now % MINUTE > 10_000) await untilDatabaseTime(Math.ceil(now / MINUTE) * MINUTE + 500);
    const tick = Math.ceil((await databaseNow()) / MINUTE) * MINUTE;
    const minute = new Date(tick).getUTCMinutes();
    const everyTen = Array.from({ length: 6 }, (_, i) => (minute + 10 * i) % 60).sort((a, b) => a - b).join(",");
    const crontab = path.join(dir, "crontab");
    fs.writeFileSync(crontab, `* * * * * tick ?id=every_minute&grace=1s {ms: 20}\n${everyTen} * * * * tick ?id=every_ten&grace=1s {ms: 20}\n`);

    // The first node publishes the entries and stops before their first tick.
    const first = startNode("first", crontab);
    await first.started();
    assert.equal(await first.stop(), 0);
    assert.ok((await databaseNow()) < tick, "stopped before the tick");

    // Every node down across the tick; the next starts 12 s after it (past the 10 s a live
    // node's loop is given to queue it, so it is recorded at once).
    await untilDatabaseTime(tick + 12_000);
    const second = await startNode("second", crontab).started();
    for (const job of ["every_minute", "every_ten"]) {
      const shown = await view(job);
      assert.equal(shown.late, false, `${job}: not late for a tick no node could run (late since ${shown.late_since?.toISOString()})`);
      assert.deepEqual((await rowsOf(job)).map((row) => [row.scheduled_for.getTime(), row.status]), [[tick, "missed"]], `${job}: the passed tick, missed, once`);
      assert.equal(Number(shown.missed_count), 1);
    }
    assert.equal(second.logged(/recorded as missed$/).length, 1, "the node says it recorded them");
    const status = await runCliProcess(["status"], { DATABASE_URL: db.connectionString });
    assert.equal(status.code, 0, status.stderr);
    assert.doesNotMatch(status.stdout, /^every_\w+ .*LATE/m, status.stdout);

    // The next minute's tick runs as usual, once; the missed one stays recorded once.
    await eventually(async () => (await rowsOf("every_minute")).some((row) => row.scheduled_for.getTime() === tick + MINUTE && row.status === "success"), {
      timeoutMs: 2 * MINUTE,
      intervalMs: 500,
      what: "the tick after the restart to run",
    });
    const everyMinute = await rowsOf("every_minute");
    assert.deepEqual(everyMinute.slice(0, 2).map((row) => [row.scheduled_for.getTime(), row.status]), [[tick, "missed"], [tick + MINUTE, "success"]]);
    assert.equal((await view("every_minute")).late, false);
    assert.deepEqual((await rowsOf("every_ten")).map((row) => row.status), ["missed"], "every_ten's next tick is ten minutes on");
  });
});
