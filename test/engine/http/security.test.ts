import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { defineJob, SchedulerError, startScheduler, type JobResult } from "../../../src/index.ts";
import { loadEngineConfig } from "../../../src/engine/config.ts";
import type { SchedulerPack } from "../../../src/engine/pack.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";

// What a foreign web page can make a browser do to the node's endpoint, done with real
// requests: rebinding its own name to the node (the Host header still says its name),
// prototype keys as routes, a request target that does not parse, and a failing handler.

const db = useTestDatabase();

const ok = defineJob({ name: "sec_ok", description: "Succeeds", payload: {}, run: async (): Promise<JobResult> => ({ itemsProcessed: 1, itemsFailed: 0, message: "secret-run-message" }) });
const SECRET = "stack detail: /srv/secret/config.json";
const failingPack: SchedulerPack = {
  name: "failing",
  http: () => ({
    api: {
      boom: async () => {
        throw new Error(SECRET);
      },
    },
    panels: [],
  }),
};

interface Answer {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** A GET with the Host header given (fetch cannot set it: a browser sets it from the page's URL). */
function getWithHost(address: string, path: string, host: string, connectTo?: string): Promise<Answer> {
  const [hostname, port] = [connectTo ?? address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
  return new Promise((resolve, reject) => {
    const request = http.request({ hostname, port, path, method: "GET", headers: { host }, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode!, body: Buffer.concat(chunks).toString("utf8"), headers: response.headers }));
    });
    request.on("error", reject);
    request.end();
  });
}

/** Raw bytes over a socket, as a client that does not check what it sends; the status line's code. */
function rawRequest(address: string, text: string): Promise<{ status: number; response: string }> {
  const port = Number(address.slice(address.lastIndexOf(":") + 1));
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(text));
    let response = "";
    socket.on("data", (chunk) => {
      response += chunk.toString("utf8");
      if (response.includes("\r\n\r\n")) socket.end();
    });
    socket.on("error", reject);
    socket.on("close", () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0), response }));
  });
}

describe("HTTP endpoint against a foreign web page", () => {
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  let node: SchedulerHandle;
  let runId: string;

  before(async () => {
    node = await startScheduler({ pool: db.pool, jobs: [ok], taskDirectory: null, crontab: "0 4 * * * sec_ok\n", bootstrapJobs: [], logger, http: "127.0.0.1:0", packs: [failingPack], httpAllowedHosts: ["scheduler.ops.svc.cluster.local"] });
    runId = String((await node.runJob("sec_ok", {}, { wait: true })).run!.id);
    await db.pool.query("insert into banned_ips (ip_address, reason, ban_source) values ('203.0.113.9', 'secret-ban-reason', 'manual')");
  });
  after(() => node.stop());

  it("refuses a rebound name with 421 and no data, on every endpoint; serves localhost, loopback and the listed names", async () => {
    const address = node.httpAddress!;
    const port = address.slice(address.lastIndexOf(":") + 1);
    const paths = [`/api/runs/${runId}`, "/api/runs", "/api/services", "/api/bans", "/api/schedules", "/api/nodes", "/metrics", "/readyz", "/healthz", "/"];
    for (const host of [`evil.example:${port}`, "evil.example", `127.0.0.1.evil.example:${port}`, `localhost.evil.example:${port}`, "scheduler.ops.svc.cluster.local.evil.example"]) {
      for (const path of paths) {
        const answer = await getWithHost(address, path, host);
        assert.equal(answer.status, 421, `${host} ${path}`);
        for (const secret of ["secret-run-message", "secret-ban-reason", "sec_ok", "203.0.113.9", "scheduler_"]) assert.ok(!answer.body.includes(secret), `${host} ${path} leaks ${secret}`);
      }
    }
    for (const host of [`localhost:${port}`, "localhost", `127.0.0.1:${port}`, `LOCALHOST:${port}`, "scheduler.ops.svc.cluster.local", `scheduler.ops.svc.cluster.local:${port}`]) {
      const run = await getWithHost(address, `/api/runs/${runId}`, host);
      assert.equal(run.status, 200, host);
      assert.match(run.body, /secret-run-message/);
      assert.equal((await getWithHost(address, "/api/bans", host)).status, 200, host);
    }
  });

  it("serves the machine's own addresses when bound beyond loopback (a pod IP), and [::1]", async (t) => {
    const own = Object.values(os.networkInterfaces())
      .flat()
      .find((entry) => entry && entry.family === "IPv4" && !entry.internal);
    const wide = await startScheduler({ pool: db.pool, jobs: [ok], taskDirectory: null, crontab: "", bootstrapJobs: [], logger: testLogger, http: "0.0.0.0:0", platform: false });
    t.after(() => wide.stop());
    const port = wide.httpAddress!.slice(wide.httpAddress!.lastIndexOf(":") + 1);
    assert.equal((await getWithHost(wide.httpAddress!, "/api/schedules", `127.0.0.1:${port}`, "127.0.0.1")).status, 200);
    assert.equal((await getWithHost(wide.httpAddress!, "/api/schedules", `[::1]:${port}`, "127.0.0.1")).status, 200);
    assert.equal((await getWithHost(wide.httpAddress!, "/api/schedules", `scheduler.ops.svc:${port}`, "127.0.0.1")).status, 421, "a service name must be listed");
    if (!own) return t.diagnostic("no non-loopback IPv4 address on this machine: the pod-IP case is not exercised");
    assert.equal((await getWithHost(wide.httpAddress!, "/metrics", `${own.address}:${port}`, own.address)).status, 200, `Host ${own.address}`);
    assert.equal((await getWithHost(wide.httpAddress!, "/metrics", `evil.example:${port}`, own.address)).status, 421);
  });

  it("checks SCHEDULER_HTTP_ALLOWED_HOSTS: names or addresses without a port, else exit 2", () => {
    assert.deepEqual(loadEngineConfig({}).SCHEDULER_HTTP_ALLOWED_HOSTS, []);
    assert.deepEqual(loadEngineConfig({ SCHEDULER_HTTP_ALLOWED_HOSTS: " scheduler.ops.svc , 10.0.0.7,[fd00::1]" }).SCHEDULER_HTTP_ALLOWED_HOSTS, ["scheduler.ops.svc", "10.0.0.7", "[fd00::1]"]);
    for (const bad of ["scheduler:9464", "http://scheduler", "a b"]) {
      assert.throws(() => loadEngineConfig({ SCHEDULER_HTTP_ALLOWED_HOSTS: bad }), (error: unknown) => error instanceof SchedulerError && error.exitCode === 2 && /SCHEDULER_HTTP_ALLOWED_HOSTS=.*without a port/.test(error.message), bad);
    }
  });

  it("looks routes up among its own: prototype keys are 404, not 500 or 200", async () => {
    const base = `http://${node.httpAddress}`;
    for (const path of ["/api/__proto__", "/api/constructor", "/api/hasOwnProperty", "/api/toString", "/api/__proto__/1", "/api/constructor/1"]) {
      const response = await fetch(`${base}${path}`);
      assert.equal(response.status, 404, path);
      await response.text();
    }
    const action = await fetch(`${base}/api/actions/constructor`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(action.status, 404);
    await action.text();
  });

  it("answers 400 to a request target that does not parse, and logs nothing for it", async () => {
    const before = logs.length;
    for (const target of ["//[bad", "//[::1", "http://[x/metrics"]) {
      const { status, response } = await rawRequest(node.httpAddress!, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      assert.equal(status, 400, `${target}: ${response.slice(0, 200)}`);
      assert.doesNotMatch(response, /Invalid URL/);
    }
    assert.deepEqual(logs.slice(before).filter((line) => Number(line.level) >= 40), [], "no warning or error per bad request");
  });

  it("answers a failure 500 with a request id and nothing else; the details are logged once under that id", async () => {
    const response = await fetch(`http://${node.httpAddress}/api/boom`);
    assert.equal(response.status, 500);
    const body = (await response.json()) as { error: string; request_id: string };
    assert.deepEqual(Object.keys(body).sort(), ["error", "request_id"]);
    assert.equal(body.error, "internal error");
    assert.match(body.request_id, /^[0-9a-f]{12}$/);
    const logged = logs.filter((line) => line.requestId === body.request_id);
    assert.equal(logged.length, 1);
    assert.match(JSON.stringify(logged[0]), /srv\/secret\/config\.json/);
  });
});
