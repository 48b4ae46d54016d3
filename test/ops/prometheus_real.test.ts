// The shipped alert rules and scrape config in a real Prometheus (Debian's `prometheus`), two
// real nodes scraped: SchedulerJobFailing fires for a job run outside the crontab (its failed
// series exists at 0 from the node's start, so increase() counts the first failures), and
// SchedulerNodeDead for a node killed with SIGKILL. Only the intervals and targets of the
// example config are changed. Heavy (a minute of `for:`): run once per CI run.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { projectRoot } from "../../src/engine/db/sql-file.ts";
import { useTestDatabase } from "../helpers/db.ts";
import { eventually } from "../helpers/wait.ts";
import { scenarioSkip } from "../engine/cluster/failover-scenarios.ts";
import { addJob, freePort, NodeProcess } from "../engine/cluster/harness.ts";

const PROMETHEUS = "/usr/bin/prometheus";
const skip = scenarioSkip() || (fs.existsSync(PROMETHEUS) ? false : "prometheus is not installed: apt-get install prometheus (.ci/run does)");
const db = useTestDatabase();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-prometheus-"));
const nodes: NodeProcess[] = [];
let prometheus: ChildProcess | undefined;
let api = "";

interface Alert {
  labels: Record<string, string>;
  state: string;
}
const alerts = async (): Promise<Alert[]> => ((await (await fetch(`${api}/api/v1/alerts`)).json()) as { data: { alerts: Alert[] } }).data.alerts;
const firing = async (name: string, labels: Record<string, string> = {}) =>
  (await alerts()).some((alert) => alert.state === "firing" && alert.labels.alertname === name && Object.entries(labels).every(([key, value]) => alert.labels[key] === value));

describe("the shipped rules in a real Prometheus", { skip }, () => {
  before(async () => {
    const ports = [await freePort(), await freePort()];
    for (const [i, port] of ports.entries()) {
      nodes.push(await new NodeProcess(`prom${i + 1}`, { DATABASE_URL: db.connectionString, SCHEDULER_HOST: `prom-${i + 1}`, SCHEDULER_HTTP_ADDR: `127.0.0.1:${port}` }).started());
    }
    // The example config as shipped, its targets ours and its intervals short.
    const config = fs.readFileSync(path.join(projectRoot, "ops/prometheus/prometheus.example.yml"), "utf8")
      .replace(/scrape_interval: \S+/, "scrape_interval: 1s")
      .replace(/evaluation_interval: \S+/, "evaluation_interval: 1s")
      .replace("- scheduler-alerts.yml", `- ${path.join(projectRoot, "ops/prometheus/scheduler-alerts.yml")}`)
      .replace(/targets: \[.*\]/, `targets: [${ports.map((port) => `"127.0.0.1:${port}"`).join(", ")}]`);
    assert.doesNotMatch(config, /honor_labels/, "the shipped config needs no honor_labels");
    fs.writeFileSync(path.join(dir, "prometheus.yml"), config);
    const check = spawnSync("/usr/bin/promtool", ["check", "config", path.join(dir, "prometheus.yml")], { encoding: "utf8" });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    prometheus = spawn(PROMETHEUS, [`--config.file=${path.join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${path.join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: "ignore" });
    await eventually(async () => (await fetch(`${api}/-/ready`).catch(() => null))?.status === 200, { timeoutMs: 30_000, what: "Prometheus to be ready" });
    // Both targets scraped.
    await eventually(async () => {
      const { data } = (await (await fetch(`${api}/api/v1/query?query=${encodeURIComponent('up{job="systemprompt-scheduler"} == 1')}`)).json()) as { data: { result: unknown[] } };
      return data.result.length === 2;
    }, { timeoutMs: 30_000, what: "both nodes to be scraped" });
  });
  after(async () => {
    prometheus?.kill("SIGTERM");
    for (const node of nodes) node.kill("SIGKILL");
    await Promise.all(nodes.map((node) => node.exited));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("fires SchedulerJobFailing for a job run outside the crontab, from its first failures", async () => {
    // Three runs of a task no crontab line names, each failing for good (a payload its job refuses).
    for (let i = 0; i < 3; i++) await addJob(db.pool, "slow", { ms: -1 }, { queue: false, maxAttempts: 1 });
    await eventually(async () => (await db.pool.query("select 1 from scheduler.job_runs where task = 'slow' and status = 'failed'")).rowCount === 3, { timeoutMs: 30_000, what: "three failed runs" });
    await eventually(() => firing("SchedulerJobFailing", { schedule: "slow" }), { timeoutMs: 60_000, intervalMs: 500, what: "SchedulerJobFailing for slow" });
  });

  it("fires SchedulerNodeDead for a node killed with SIGKILL", async () => {
    const victim = nodes[1]!;
    victim.kill("SIGKILL");
    await victim.exited;
    await eventually(async () => (await db.pool.query("select 1 from scheduler.nodes where node_id = $1 and dead_at is not null", [victim.nodeId])).rowCount === 1, { timeoutMs: 30_000, what: "the victim declared dead" });
    // `for: 1m` after the dead count rose.
    await eventually(() => firing("SchedulerNodeDead"), { timeoutMs: 120_000, intervalMs: 1000, what: "SchedulerNodeDead" });
  });
});
