// Two real nodes on different SCHEDULER_HOST values share one database and one `services`
// table: each starts, stops and forgets only its own host's services. The proof: node B is
// killed, its service is disabled, and node A leaves it alone; node B comes back and does it.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { useTestDatabase } from "../../helpers/db.ts";
import { eventually, sleep } from "../../helpers/wait.ts";
import { freePort, NodeProcess } from "../../engine/cluster/harness.ts";

const db = useTestDatabase();
const server = path.resolve(import.meta.dirname, "./fixtures/http-server.ts");
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-hosts-"));
const nodes: NodeProcess[] = [];
const servicePids: number[] = [];

function node(host: string): NodeProcess {
  const started = new NodeProcess(host, {
    DATABASE_URL: db.connectionString,
    SCHEDULER_HOST: host,
    SCHEDULER_RECONCILE_INTERVAL_MS: "300",
    SCHEDULER_SERVICES_LOG_DIR: logDir,
    SCHEDULER_SERVICES_ON_SHUTDOWN: "leave-running",
  });
  nodes.push(started);
  return started;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function hostOf(pid: number): string | undefined {
  const environ = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
  return environ.find((entry) => entry.startsWith("SYSTEMPROMPT_SERVICE_HOST="))?.split("=")[1];
}

async function service(name: string) {
  const { rows } = await db.pool.query("select name, host, status, pid, desired_status from services where name = $1", [name]);
  return rows[0];
}

describe("two hosts on one database", () => {
  after(async () => {
    await Promise.all(nodes.filter((n) => n.exitCode === undefined).map((n) => n.stop()));
    for (const pid of servicePids) if (alive(pid)) process.kill(pid, "SIGKILL");
    fs.rmSync(logDir, { recursive: true, force: true });
  });

  it("each node reconciles only its own host's services", async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    await db.pool.query(
      `insert into services (name, module_name, host, command, args, port) values
         ('agent-a', 'agent', 'host-a', $1, array[$2], $3),
         ('mcp-b', 'mcp', 'host-b', $1, array[$2], $4)`,
      [process.execPath, server, portA, portB],
    );
    const a = node("host-a");
    const b = node("host-b");
    await Promise.all([a.started(), b.started()]);

    const [runningA, runningB] = await eventually(async () => {
      const rows = [await service("agent-a"), await service("mcp-b")];
      return rows.every((row) => row.status === "running") && rows;
    }, { timeoutMs: 30_000, what: "both services running" });
    servicePids.push(runningA.pid, runningB.pid);
    assert.equal(hostOf(runningA.pid), "host-a", "agent-a was started by host-a's node");
    assert.equal(hostOf(runningB.pid), "host-b", "mcp-b was started by host-b's node");

    // host-b's node dies; its service keeps running; disabling it is host-b's business only
    b.kill("SIGKILL");
    await b.exited;
    await db.pool.query("update services set desired_status = 'disabled' where name = 'mcp-b'");
    await sleep(2000);
    assert.ok(alive(runningB.pid), "host-a's node did not stop host-b's service");
    assert.equal((await service("mcp-b"))?.desired_status, "disabled", "nor did it forget the row");
    assert.equal((await service("agent-a"))?.status, "running");

    // host-b comes back and applies the decision table to its own service: stop, then forget
    const b2 = node("host-b");
    await b2.started();
    await eventually(async () => !(await service("mcp-b")) && !alive(runningB.pid), { timeoutMs: 30_000, what: "host-b to stop and forget mcp-b" });
    assert.ok(alive(runningA.pid), "host-a's service untouched");
  });
});
