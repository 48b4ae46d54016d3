import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { runningServer } from "../../src/engine/db/embedded/index.ts";
import { projectRoot } from "../../src/engine/db/sql-file.ts";
import { runCliProcess } from "../helpers/cli.ts";
import { freePort } from "../../scripts/free-port.ts";
import { eventually } from "../helpers/wait.ts";

// `npm start` with no DATABASE_URL: an embedded PostgreSQL in SCHEDULER_DATA_DIR, reused by
// CLI commands while the node runs, stopped after the node drains on SIGTERM.


describe("start on the embedded PostgreSQL", () => {
  it("starts, is seen by other commands, and shuts down cleanly on SIGTERM", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-start-"));
    fs.chmodSync(dir, 0o755);
    const dataDir = path.join(dir, "pg");
    const crontab = path.join(dir, "crontab");
    fs.writeFileSync(crontab, "# Ends idle sessions.\n*/10 * * * * cleanup_inactive_sessions\n");
    const env = {
      ...process.env,
      DATABASE_URL: "",
      SCHEDULER_DATA_DIR: dataDir,
      SCHEDULER_EMBEDDED_PORT: String(await freePort()),
      SCHEDULER_CRONTAB: crontab,
      SCHEDULER_RECONCILE_SERVICES: "false",
      SCHEDULER_HTTP_ADDR: `127.0.0.1:${await freePort()}`,
      LOG_LEVEL: "info",
    };
    const node = spawn(process.execPath, [path.join(projectRoot, "src/cli/main.ts"), "start"], { cwd: projectRoot, env, stdio: ["ignore", "ignore", "pipe"] });
    let logs = "";
    node.stderr.on("data", (chunk) => (logs += chunk));
    const exited = new Promise<number | null>((resolve) => node.on("exit", (code) => resolve(code)));
    try {
      await eventually(async () => logs.includes("scheduler started"), { timeoutMs: 60_000, what: "the node to start" });
      const server = runningServer(dataDir);
      assert.ok(server, "the embedded server runs");
      // One line a person can click, with what it allows.
      const dashboard = `http://${env.SCHEDULER_HTTP_ADDR}/`;
      assert.ok(logs.includes(`"msg":"dashboard: ${dashboard} (read-only; set SCHEDULER_HTTP_TOKEN for actions)"`), logs);
      assert.equal((await fetch(dashboard)).status, 200);

      const status = await runCliProcess(["status", "--json"], env);
      assert.equal(status.code, 0, status.stderr);
      const parsed = JSON.parse(status.stdout);
      assert.deepEqual(parsed.jobs.map((job: { job_name: string }) => job.job_name), ["cleanup_inactive_sessions"]);
      assert.equal(parsed.liveNodes.length, 1);
      assert.ok(runningServer(dataDir), "a CLI command reuses the server and leaves it running");

      const run = await runCliProcess(["run", "cleanup_inactive_sessions", "--wait"], env);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /cleanup_inactive_sessions: success/);

      node.kill("SIGTERM");
      assert.equal(await exited, 0);
      assert.match(logs, /scheduler stopped/);
      assert.equal(runningServer(dataDir), null, "the node stopped its embedded server last");
    } finally {
      node.kill("SIGKILL");
      const server = runningServer(dataDir);
      if (server) process.kill(server.pid, "SIGINT");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
