import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { connectionStringFor, runningServer, startEmbeddedPostgres } from "../../src/engine/db/embedded/index.ts";
import { readOwner } from "../../src/engine/db/embedded/owner.ts";
import { projectRoot } from "../../src/engine/db/sql-file.ts";
import { createPool } from "../../src/engine/db/pool.ts";
import { freePort, NodeProcess } from "../engine/cluster/harness.ts";
import { runCliProcess } from "../helpers/cli.ts";
import { testLogger } from "../helpers/db.ts";
import { eventually, sleep } from "../helpers/wait.ts";

// Every way a node is stopped, with real processes on an embedded PostgreSQL of their own:
// SIGTERM through `npm start`, a closed terminal (SIGHUP), a second signal, SIGKILL, a signal
// during start-up; and the embedded database never outliving its node.

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) {
    // As in a fresh clone: the default SCHEDULER_DATA_DIR is .data/postgres, and .data/ does not exist yet.
  const dataDir = path.join(dir, ".data", "postgres");
    const server = runningServer(dataDir);
    if (server) {
      try {
        execFileSync("pkill", ["-f", `watchdog.ts ${dataDir}`]);
      } catch {
        /* none */
      }
      process.kill(server.pid, "SIGINT");
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

async function place(): Promise<{ dir: string; dataDir: string; env: Record<string, string> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-life-"));
  fs.chmodSync(dir, 0o755);
  dirs.push(dir);
  // As in a fresh clone: the default SCHEDULER_DATA_DIR is .data/postgres, and .data/ does not exist yet.
  const dataDir = path.join(dir, ".data", "postgres");
  return {
    dir,
    dataDir,
    env: { DATABASE_URL: "", SCHEDULER_DATA_DIR: dataDir, SCHEDULER_EMBEDDED_PORT: String(await freePort()), SCHEDULER_RECONCILE_SERVICES: "false" },
  };
}

/** Reads the node's database after the node has gone (starting the server for a moment). */
async function afterwards<T>(dataDir: string, read: (query: (text: string, values?: unknown[]) => Promise<Record<string, unknown>[]>) => Promise<T>): Promise<T> {
  const server = await startEmbeddedPostgres({ dataDir, port: await freePort(), logger: testLogger });
  const pool = createPool(server.connectionString, { max: 1 });
  try {
    return await read(async (text, values) => (await pool.query(text, values)).rows);
  } finally {
    await pool.end();
    await server.stop();
  }
}

/**
 * Queues a `slow` job and waits until the node runs it (its history row says running): a fixed
 * pause was not enough on a loaded machine, and a signal sent before the job starts proves
 * nothing about draining. Returns when the run started (epoch ms, the database's clock).
 */
async function queueSlowJob(env: Record<string, string>, ms: number): Promise<number> {
  const queued = await runCliProcess(["run", "slow", "--payload", JSON.stringify({ ms, tag: "in-flight" })], env);
  assert.equal(queued.code, 0, queued.stderr);
  const pool = createPool(connectionStringFor(env.SCHEDULER_DATA_DIR!, Number(env.SCHEDULER_EMBEDDED_PORT)), { max: 1 });
  try {
    const started = await eventually(async () => {
      const { rows } = await pool.query<{ started_at: Date }>("select started_at from scheduler.job_runs where task = 'slow' and status = 'running'");
      return rows[0]?.started_at;
    }, { timeoutMs: 30_000, what: "the node to start the slow job" });
    return started.getTime();
  } finally {
    await pool.end();
  }
}

const watchdogActed = (dataDir: string) => fs.readFileSync(`${dataDir}.log`, "utf8").includes("watchdog");

describe("stopping a node", () => {
  it("SIGTERM to `npm start` drains the node: the running job finishes, the node is marked stopped, the database stops last", async () => {
    const { dataDir, env } = await place();
    const node = await new NodeProcess("npm", env, ["npm", "start"]).started(90_000);
    const jobStartedAt = await queueSlowJob(env, 3000);
    assert.equal(await node.stop(), 0, node.stderrTail);
    assert.ok(Date.now() >= jobStartedAt + 3000, "npm waited for the node to drain (the 3 s job to finish)");
    assert.equal(runningServer(dataDir), null, "the embedded PostgreSQL stopped with its node");
    assert.equal(readOwner(dataDir), null);
    assert.equal(watchdogActed(dataDir), false, "the node stopped its database itself");
    const lastLines = node.logs.map((line) => line.msg).filter((msg) => /scheduler stopped|embedded PostgreSQL stopped/.test(msg));
    assert.deepEqual(lastLines, ["scheduler stopped", "embedded PostgreSQL stopped"], "its log says so, database last");
    const state = await afterwards(dataDir, async (query) => ({
      runs: await query("select status, payload->>'tag' as tag from scheduler.job_runs where task = 'slow'"),
      nodes: await query("select stopped_at is not null as stopped from scheduler.nodes"),
      locked: await query("select count(*)::int as n from graphile_worker.jobs where locked_at is not null"),
    }));
    assert.deepEqual(state.runs, [{ status: "success", tag: "in-flight" }]);
    assert.deepEqual(state.nodes, [{ stopped: true }]);
    assert.deepEqual(state.locked, [{ n: 0 }]);
  });

  it("SIGTERM to the bin started by the system's older Node (it re-runs itself on Node 22) drains the node", { skip: fs.existsSync("/usr/bin/node") ? false : "no system Node" }, async () => {
    const { dataDir, env } = await place();
    const node = await new NodeProcess("bin", env, ["/usr/bin/node", path.join(projectRoot, "bin/systemprompt-scheduler.js"), "start"]).started(90_000);
    await queueSlowJob(env, 2000);
    assert.equal(await node.stop(), 0, node.stderrTail);
    assert.equal(runningServer(dataDir), null);
    assert.equal(watchdogActed(dataDir), false);
    const runs = await afterwards(dataDir, (query) => query("select status from scheduler.job_runs where task = 'slow'"));
    assert.deepEqual(runs, [{ status: "success" }]);
  });

  it("a closed terminal (SIGHUP) stops the node the same way", async () => {
    const { dataDir, env } = await place();
    // A pseudo-terminal, closed after the node has started: the kernel sends SIGHUP.
    const script = `
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execvp("npm", ["npm", "start"])
out = b""
end = time.time() + 90
while time.time() < end and b"scheduler started" not in out:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            out += os.read(fd, 65536)
        except OSError:
            break
time.sleep(1)
os.close(fd)
_, status = os.waitpid(pid, 0)
print("started" if b"scheduler started" in out else "never started")
`;
    const child = spawn("python3", ["-c", script], { cwd: projectRoot, env: { ...process.env, ...env, LOG_LEVEL: "info" }, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    await new Promise((resolve) => child.on("close", resolve));
    assert.match(out, /started/);
    await eventually(async () => runningServer(dataDir) === null && readOwner(dataDir) === null, { timeoutMs: 20_000, what: "the node to stop its database and go" });
    assert.equal(watchdogActed(dataDir), false, "the node shut down and stopped its database itself");
    const nodes = await afterwards(dataDir, (query) => query("select stopped_at is not null as stopped from scheduler.nodes"));
    assert.deepEqual(nodes, [{ stopped: true }]);
  });

  it("a second signal cuts the grace to zero: the job is cancelled, recorded and released, and the node still stops cleanly", async () => {
    const { dataDir, env } = await place();
    const node = await new NodeProcess("hurried", { ...env, SCHEDULER_SHUTDOWN_GRACE_MS: "60000" }).started(90_000);
    await queueSlowJob(env, 60_000);
    node.kill("SIGINT");
    // The second signal once the node drains, and more than the 500 ms after the first in which
    // the same signal again counts as a duplicate (shutdown.ts), however late it handled the first.
    await eventually(async () => node.logged(/stopping: letting running jobs finish/).length > 0, { timeoutMs: 20_000, what: "the node to begin draining" });
    await sleep(1000);
    const hurriedAt = Date.now();
    node.kill("SIGINT");
    assert.equal(await node.exited, 130);
    assert.ok(Date.now() - hurriedAt < 8000, `stopped ${Date.now() - hurriedAt} ms after the second signal`);
    assert.equal(runningServer(dataDir), null);
    const state = await afterwards(dataDir, async (query) => ({
      runs: await query("select status, error from scheduler.job_runs where task = 'slow'"),
      jobs: await query("select attempts, locked_at is null as unlocked from graphile_worker.jobs where task_identifier = 'slow'"),
      nodes: await query("select stopped_at is not null as stopped from scheduler.nodes"),
    }));
    assert.equal(state.runs.length, 1);
    assert.equal(state.runs[0]!.status, "failed");
    assert.match(String(state.runs[0]!.error), /cancelled/);
    assert.deepEqual(state.jobs, [{ attempts: 1, unlocked: true }], "released, to be retried");
    assert.deepEqual(state.nodes, [{ stopped: true }]);
  });

  it("SIGKILL: the node's watchdog stops the embedded database within seconds; the next node starts afresh", async () => {
    const { dataDir, env } = await place();
    const node = await new NodeProcess("killed", env).started(90_000);
    node.kill("SIGKILL");
    await node.exited;
    const killedAt = Date.now();
    await eventually(async () => runningServer(dataDir) === null, { timeoutMs: 15_000, what: "the watchdog to stop the database" });
    assert.ok(Date.now() - killedAt < 10_000);
    assert.equal(watchdogActed(dataDir), true);
    await eventually(async () => readOwner(dataDir) === null, { what: "the watchdog to give up ownership" });
    const next = await new NodeProcess("next", env).started(90_000);
    assert.equal(await next.stop(), 0);
    assert.equal(runningServer(dataDir), null);
  });

  it("a database left running (its node and watchdog killed) is adopted by the next node and stopped with it; db stop stops one too", async () => {
    const { dataDir, env } = await place();
    const killAll = async (node: NodeProcess) => {
      execFileSync("pkill", ["-KILL", "-f", `watchdog.ts ${dataDir}`]);
      node.kill("SIGKILL");
      await node.exited;
      await sleep(300);
      assert.ok(runningServer(dataDir), "the database is left running");
    };
    await killAll(await new NodeProcess("first", env).started(90_000));
    const adopter = await new NodeProcess("adopter", env).started(90_000);
    assert.equal(adopter.logged(/adopting an embedded PostgreSQL/).length, 1);
    const url = await runCliProcess(["db", "url"], env);
    assert.equal(url.stdout.trim(), connectionStringFor(dataDir, runningServer(dataDir)!.port));
    assert.match(url.stdout, new RegExp(`^postgres://postgres:[A-Za-z0-9_-]{32}@127\\.0\\.0\\.1:${runningServer(dataDir)!.port}/postgres`), "the folder's random password");
    if (!spawnSync("psql", ["--version"]).error) {
      const psql = await runCliProcess(["db", "psql", "--", "-tA", "-c", "select count(*) from scheduler.nodes"], env);
      assert.equal(psql.code, 0, psql.stderr);
      assert.match(psql.stdout.trim(), /^\d+$/);
    }
    const refused = await runCliProcess(["db", "stop"], env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /belongs to a running node/);
    assert.equal(await adopter.stop(), 0);
    assert.equal(runningServer(dataDir), null, "the adopter stopped it");

    await killAll(await new NodeProcess("again", env).started(90_000));
    const stopped = await runCliProcess(["db", "stop"], env);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /stopped the embedded PostgreSQL/);
    assert.equal(runningServer(dataDir), null);
  });

  it("a second node on the same data folder is refused; the first keeps running", async () => {
    const { env } = await place();
    const first = await new NodeProcess("first", env).started(90_000);
    const second = new NodeProcess("second", env);
    assert.equal(await second.exited, 2);
    assert.match(second.stderrTail, /owned by another node \(pid \d+/);
    assert.ok(first.exitCode === undefined, "the first node runs on");
    assert.equal(await first.stop(), 0);
  });

  it("a signal during start-up leaves nothing running and nothing half made", async () => {
    const { dataDir, env } = await place();
    const dir = path.dirname(dataDir); // where the cluster is built before it is renamed into place
    const early = new NodeProcess("early", env);
    // While the cluster is created (initdb takes a second or more).
    await eventually(async () => fs.existsSync(dir) && fs.readdirSync(dir).some((name) => name.includes("initdb")), { timeoutMs: 30_000, intervalMs: 20, what: "initdb to begin" });
    early.kill("SIGTERM");
    await early.exited;
    await sleep(500);
    assert.equal(runningServer(dataDir), null, "no database left running");
    assert.equal(readOwner(dataDir), null);
    assert.deepEqual(fs.readdirSync(dir).filter((name) => name.includes("initdb")), [], "no half-made cluster left");
    const later = await new NodeProcess("later", env).started(90_000);
    assert.equal(await later.stop(), 0);
  });
});
