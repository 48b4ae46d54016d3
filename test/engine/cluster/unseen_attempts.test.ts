// Every attempt is in the history, also one whose node died within its first second: a run's
// row is written when it ends, or as 'running' after a second, so a node SIGKILLed right after
// locking a job left no row, and on the job's last attempt the run vanished from history. The
// rescue now writes the attempt's 'abandoned' row, started when its job was locked. Real nodes.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";
import { addJob, NodeProcess, runs } from "./harness.ts";

const db = useTestDatabase();
const nodes: NodeProcess[] = [];
let serial = 0;

function startNode(): NodeProcess {
  serial += 1;
  const node = new NodeProcess(`node${serial}`, { DATABASE_URL: db.connectionString, SCHEDULER_HOST: `host-${serial}` });
  nodes.push(node);
  return node;
}

/** Waits until some node has locked job `jobId` and SIGKILLs that node at once, before the attempt's first second is up. */
async function killHolderOf(jobId: string): Promise<{ victim: NodeProcess; lockedAt: Date }> {
  const held = await eventually(async () => {
    const { rows } = await db.pool.query<{ node_id: string; locked_at: Date }>(
      "select n.node_id, j.locked_at from graphile_worker.jobs j join scheduler.nodes n on n.worker_pool_id = j.locked_by where j.id = $1",
      [jobId],
    );
    return rows[0];
  }, { intervalMs: 10, what: `job ${jobId} to be locked` });
  const victim = nodes.find((node) => node.nodeId === held.node_id)!;
  victim.kill("SIGKILL");
  await victim.exited;
  // The premise: the attempt died before its row was written.
  assert.deepEqual(await runs(db.pool, "job_id = $1", [jobId]), [], "the attempt already had a row when its node was killed");
  return { victim, lockedAt: held.locked_at };
}

describe("an attempt killed in its first second", () => {
  before(async () => {
    await Promise.all([startNode().started(), startNode().started()]);
  });
  after(async () => {
    for (const node of nodes) node.kill("SIGKILL");
    await Promise.all(nodes.map((node) => node.exited));
  });

  it("gets an 'abandoned' row when its node is rescued, and the job's next attempt its own row", async () => {
    const jobId = await addJob(db.pool, "slow", { ms: 3000, tag: "first-second" }, { maxAttempts: 3 });
    const { victim, lockedAt } = await killHolderOf(jobId);
    startNode();
    const rows = await eventually(async () => {
      const found = await runs(db.pool, "job_id = $1", [jobId]);
      return found.some((row) => row.status === "success") && found;
    }, { timeoutMs: 30_000, what: "the rescue and the job's next attempt" });
    assert.deepEqual(rows.map((row) => [row.status, row.attempt]), [["abandoned", 1], ["success", 2]]);
    const [abandoned] = rows;
    assert.equal(abandoned!.node_id, victim.nodeId);
    assert.equal(abandoned!.started_at.getTime(), lockedAt.getTime(), "started when its job was locked");
    assert.match(abandoned!.error!, new RegExp(`node ${victim.nodeId} stopped heartbeating .* declared dead by`));
    const { rows: rescues } = await db.pool.query<{ runs_abandoned: string[] }>("select runs_abandoned from scheduler.rescues where node_id = $1", [victim.nodeId]);
    assert.deepEqual(rescues.map((rescue) => rescue.runs_abandoned), [[abandoned!.id]], "the rescue counts the attempt it abandoned");
  });

  it("on the job's last attempt, the tick stays in the history as abandoned", async () => {
    const jobId = await addJob(db.pool, "slow", { ms: 3000, tag: "last-attempt" }, { maxAttempts: 1 });
    const { victim } = await killHolderOf(jobId);
    startNode();
    const [row] = await eventually(async () => {
      const found = await runs(db.pool, "job_id = $1", [jobId]);
      return found.length > 0 && found;
    }, { timeoutMs: 30_000, what: "the rescue of the killed node" });
    assert.equal(row!.status, "abandoned");
    assert.equal(row!.node_id, victim.nodeId);
    assert.equal(row!.task, "slow");
    assert.equal(row!.job_name, "slow");
  });
});
