// A live crontab edit the node rejects is visible until the file is repaired: `status` says it
// first, /metrics has scheduler_crontab_rejected 1 and a rejected reload, the dashboard's
// /api/nodes carries it (its banner), and a repaired file logs `crontab reloaded` and clears
// all of it. A real node process, a real file, real HTTP requests.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { runCliProcess } from "../../helpers/cli.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";
import { freePort, NodeProcess } from "../cluster/harness.ts";

const db = useTestDatabase();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-crontab-state-"));
const crontab = path.join(dir, "crontab");
const GOOD = "0 3 * * * tick {ms: 1}\n";
let node: NodeProcess;
let base: string;

const metric = async (name: string) => {
  const text = await (await fetch(`${base}/metrics`)).text();
  return text.split("\n").filter((line) => line.startsWith(name)).join("\n");
};
const status = async () => {
  const result = await runCliProcess(["status"], { DATABASE_URL: db.connectionString });
  assert.equal(result.code, 0, result.stderr);
  return result.stdout;
};

describe("a rejected live crontab edit", () => {
  before(async () => {
    fs.writeFileSync(crontab, GOOD);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    node = new NodeProcess("crontab-node", { DATABASE_URL: db.connectionString, SCHEDULER_CRONTAB: crontab, SCHEDULER_CRONTAB_POLL_MS: "200", SCHEDULER_HTTP_ADDR: `127.0.0.1:${port}` });
    await node.started();
  });
  after(async () => {
    await node?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("shows in status, /metrics and /api/nodes until the file is repaired", async () => {
    assert.match(await metric("scheduler_crontab_rejected"), /^scheduler_crontab_rejected 0$/m);
    assert.match(await metric("scheduler_crontab_reloads_total"), /result="rejected"} 0/);

    fs.writeFileSync(crontab, GOOD + "0 4 * * * tock {ms: 1}\n*/5 * * * no_such_task\n");
    await eventually(async () => /^scheduler_crontab_rejected 1$/m.test(await metric("scheduler_crontab_rejected")), { what: "the rejection on /metrics" });
    assert.match(await metric("scheduler_crontab_reloads_total"), /result="rejected"} 1/);
    const shown = await status();
    const first = shown.split("\n")[0]!;
    assert.match(first, /^crontab rejected at \S+ on \S+: .*crontab:3: .*; the previous schedule is in force$/);
    const nodes = (await (await fetch(`${base}/api/nodes`)).json()) as { node_id: string; crontab_error: string | null; crontab_rejected_at: string | null }[];
    assert.equal(nodes.length, 1);
    assert.match(nodes[0]!.crontab_error ?? "", /crontab:3:/);
    assert.ok(nodes[0]!.crontab_rejected_at);
    assert.equal(node.logged(/crontab edit rejected/).length, 1, "said once, not on every poll");

    // Repaired by putting the schedule in force back: logged, and cleared everywhere.
    fs.writeFileSync(crontab, GOOD);
    await eventually(async () => /^scheduler_crontab_rejected 0$/m.test(await metric("scheduler_crontab_rejected")), { what: "the repair on /metrics" });
    assert.equal(node.logged(/^crontab reloaded/).length, 1);
    assert.doesNotMatch(await status(), /crontab rejected/);
    const repaired = (await (await fetch(`${base}/api/nodes`)).json()) as { crontab_error: string | null }[];
    assert.equal(repaired[0]!.crontab_error, null);
  });

  it("a repair that changes the schedule is applied and counted", async () => {
    fs.writeFileSync(crontab, "0 3 * * * tick {ms: 1}\n0 4 * * * nope\n");
    await eventually(async () => /^scheduler_crontab_rejected 1$/m.test(await metric("scheduler_crontab_rejected")), { what: "the second rejection" });
    fs.writeFileSync(crontab, "0 3 * * * tick {ms: 1}\n0 4 * * * tock {ms: 2}\n");
    await eventually(async () => /^scheduler_crontab_rejected 0$/m.test(await metric("scheduler_crontab_rejected")), { what: "the applied repair" });
    assert.match(await metric("scheduler_crontab_reloads_total"), /result="applied"} 1/);
    assert.match(await metric("scheduler_crontab_reloads_total"), /result="rejected"} 2/);
    assert.doesNotMatch(await status(), /crontab rejected/);
  });
});
