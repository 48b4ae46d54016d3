import assert from "node:assert/strict";
import net from "node:net";
import { describe, it } from "node:test";
import pg from "pg";
import { defineJob, SchedulerError, startScheduler, type JobResult } from "../../../src/index.ts";
import { loadEngineConfig } from "../../../src/engine/config.ts";
import { DEFAULT_HTTP_ADDR } from "../../../src/engine/http/address.ts";
import { checkReadiness } from "../../../src/engine/http/readiness.ts";
import { startHttpServer } from "../../../src/engine/http/server.ts";
import { freePort } from "../../../scripts/free-port.ts";
import { runCliProcess } from "../../helpers/cli.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { parsePrometheus, samplesOf, valueOf } from "../../helpers/prometheus.ts";
import { eventually } from "../../helpers/wait.ts";

const db = useTestDatabase();
const unreachable = "postgres://postgres:x@127.0.0.1:1/nowhere";

const ok = defineJob({ name: "http_ok", description: "Succeeds", payload: {}, run: async (): Promise<JobResult> => ({ itemsProcessed: 1, itemsFailed: 0, message: "fine" }) });
const broken = defineJob({
  name: "http_broken",
  description: "Fails",
  payload: {},
  run: async (): Promise<JobResult> => {
    throw new Error("on purpose");
  },
});

async function get(base: string, path: string) {
  const response = await fetch(`${base}${path}`);
  return { status: response.status, type: response.headers.get("content-type") ?? "", body: await response.text() };
}

describe("HTTP endpoint: /healthz, /readyz, /metrics, /api/", () => {
  it("serves health, readiness and metrics that match the database after real runs", async () => {
    const scheduler = await startScheduler({
      pool: db.pool,
      jobs: [ok, broken],
      taskDirectory: null,
      crontab: "0 4 * * * http_ok\n0 5 * * * http_broken ?max=1 {}\n",
      bootstrapJobs: [],
      logger: testLogger,
      http: "127.0.0.1:0",
      metricsCacheMs: 0,
    });
    try {
      assert.match(scheduler.httpAddress!, /^127\.0\.0\.1:\d+$/);
      const base = `http://${scheduler.httpAddress}`;
      assert.equal((await get(base, "/healthz")).status, 200);
      await eventually(async () => (await get(base, "/readyz")).status === 200, { what: "the node to be ready" });

      await scheduler.runJob("http_ok", {}, { wait: true });
      await scheduler.runJob("http_ok", {}, { wait: true });
      const failed = await scheduler.runJob("http_broken", {}, { wait: true });
      assert.equal(failed.run?.status, "failed");
      await db.pool.query("select scheduler.pause_job('http_broken', 'test')");

      const metrics = await get(base, "/metrics");
      assert.equal(metrics.status, 200);
      assert.match(metrics.type, /^text\/plain; version=0\.0\.4/);
      const samples = parsePrometheus(metrics.body);
      const { rows } = await db.pool.query<{ job_name: string; task: string; status: string; n: number }>(
        "select job_name, task, status, count(*)::int as n from scheduler.job_runs group by 1, 2, 3",
      );
      assert.ok(rows.length >= 2);
      for (const row of rows) {
        assert.equal(valueOf(samples, "scheduler_job_runs_total", { schedule: row.job_name, task: row.task, status: row.status }), row.n, `${row.job_name} ${row.status}`);
      }
      assert.equal(samplesOf(samples, "scheduler_job_runs_total").reduce((sum, s) => sum + s.value, 0), rows.reduce((sum, r) => sum + r.n, 0), "no run counted that history lacks");
      assert.equal(valueOf(samples, "scheduler_job_run_duration_seconds_count", { schedule: "http_ok", task: "http_ok" }), 2);
      assert.equal(valueOf(samples, "scheduler_schedule_paused", { schedule: "http_broken" }), 1);
      assert.equal(valueOf(samples, "scheduler_schedule_paused", { schedule: "http_ok" }), 0);
      assert.equal(valueOf(samples, "scheduler_schedule_next_run_timestamp_seconds", { schedule: "http_broken" }), undefined, "a paused schedule has no next run");
      const next = (await db.pool.query<{ t: number }>("select extract(epoch from next_run)::float8 as t from scheduled_jobs where job_name = 'http_ok'")).rows[0]!.t;
      assert.equal(valueOf(samples, "scheduler_schedule_next_run_timestamp_seconds", { schedule: "http_ok" }), next);
      const lastSuccess = (await db.pool.query<{ t: number }>("select extract(epoch from max(finished_at))::float8 as t from scheduler.job_runs where job_name = 'http_ok' and status = 'success'")).rows[0]!.t;
      assert.equal(valueOf(samples, "scheduler_schedule_last_success_timestamp_seconds", { schedule: "http_ok" }), lastSuccess);
      const alive = (await db.pool.query<{ n: number }>("select count(*)::int as n from scheduler.nodes where stopped_at is null and dead_at is null")).rows[0]!.n;
      assert.equal(valueOf(samples, "scheduler_nodes", { state: "alive" }), alive);
      assert.equal(valueOf(samples, "scheduler_nodes", { state: "dead" }), 0);
      assert.equal(valueOf(samples, "scheduler_rescues_total"), 0);
      for (const state of ["waiting", "running", "failed-for-good"]) assert.notEqual(valueOf(samples, "scheduler_queue_jobs", { state }), undefined, state);
      // The failed run's job had one attempt (?max=1): graphile-worker keeps it, failed for good.
      assert.equal(valueOf(samples, "scheduler_queue_jobs", { state: "failed-for-good" }), 1);
      // The platform pack's gauges, and Node.js process metrics.
      assert.equal(valueOf(samples, "scheduler_bans_active"), 0);
      assert.ok(metrics.body.includes("# TYPE scheduler_services gauge"));
      assert.ok(samplesOf(samples, "process_cpu_user_seconds_total").length === 1);
      assert.ok(samplesOf(samples, "nodejs_eventloop_lag_seconds").length === 1);

      const api = await get(base, "/api/schedules");
      assert.equal(api.status, 200);
      assert.deepEqual((JSON.parse(api.body) as { job_name: string }[]).map((row) => row.job_name), ["http_broken", "http_ok"]);
      // Counts and ids are JSON numbers, as in the CLI's --json.
      const ok = (JSON.parse(api.body) as Record<string, unknown>[]).find((row) => row.job_name === "http_ok")!;
      for (const field of ["run_count", "success_count", "failure_count"]) assert.equal(typeof ok[field], "number", `${field}: ${JSON.stringify(ok[field])}`);
      const runs = JSON.parse((await get(base, "/api/runs?limit=5")).body) as { id: unknown; job_id: unknown }[];
      assert.ok(runs.length > 0 && runs.every((run) => typeof run.id === "number"), JSON.stringify(runs[0]));
      assert.equal((await get(base, "/api/nothing")).status, 404);
      const root = await get(base, "/");
      assert.equal(root.status, 200);
      assert.match(root.type, /^text\/html/);
      assert.match(root.body, /<script type="module" src="\/assets\/dashboard.js">/);
    } finally {
      await scheduler.stop();
    }
    await assert.rejects(() => fetch(`http://${scheduler.httpAddress}/healthz`), "stop() closes the port");
  });

  it("/readyz answers 503 with the reason when the database does not answer", async () => {
    const gone = new pg.Pool({ connectionString: unreachable, connectionTimeoutMillis: 500 });
    gone.on("error", () => {});
    const port = await freePort();
    const http = await startHttpServer(
      { host: "127.0.0.1", port },
      {
        readiness: () => checkReadiness({ db: gone, databaseDownSince: () => Date.now() - 3000, workerProblem: () => null, timeoutMs: 1000 }),
        metrics: async () => ({ contentType: "text/plain", body: "" }),
        api: {},
      },
      testLogger,
    );
    try {
      const ready = await get(`http://127.0.0.1:${port}`, "/readyz");
      assert.equal(ready.status, 503);
      const body = JSON.parse(ready.body) as { ready: boolean; problems: string[] };
      assert.equal(body.ready, false);
      assert.match(body.problems.join("\n"), /heartbeat has not reached the database for 3 s/);
      assert.match(body.problems.join("\n"), /the database does not answer: .*(ECONNREFUSED|timeout|no answer)/);
      assert.equal((await get(`http://127.0.0.1:${port}`, "/healthz")).status, 200, "the process still runs");
    } finally {
      await http.close();
      await gone.end();
    }
    const workerDown = await checkReadiness({ db: db.pool, databaseDownSince: () => null, workerProblem: () => "the node is stopping" });
    assert.deepEqual(workerDown, { ready: false, problems: ["the node is stopping"] });
  });

  it("refuses a port in use with an error naming the address and SCHEDULER_HTTP_ADDR, and stops the node again", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await assert.rejects(
        () => startScheduler({ pool: db.pool, jobs: [ok], taskDirectory: null, crontab: "", bootstrapJobs: [], logger: testLogger, nodeId: "http-port-in-use", http: `127.0.0.1:${port}` }),
        (error: unknown) =>
          error instanceof SchedulerError && error.exitCode === 2 && error.message.includes(`127.0.0.1:${port} is already in use`) && /SCHEDULER_HTTP_ADDR/.test(error.describe()),
      );
      const { rows } = await db.pool.query("select stopped_at from scheduler.nodes where node_id = 'http-port-in-use'");
      assert.ok(rows[0]?.stopped_at, "the node released itself");
    } finally {
      blocker.close();
    }
  });

  it("runs without its endpoint, and says why, when the default address is taken (a second node on the machine)", async () => {
    const blocker = net.createServer();
    const blocked = await new Promise<boolean>((resolve) => {
      blocker.once("error", () => resolve(false)); // taken already: just as good
      blocker.listen(9464, "127.0.0.1", () => resolve(true));
    });
    const saved = process.env.SCHEDULER_HTTP_ADDR;
    delete process.env.SCHEDULER_HTTP_ADDR; // the default, as a second `npm start` on a machine has it
    try {
      const second = await startScheduler({ pool: db.pool, jobs: [ok], taskDirectory: null, crontab: "", bootstrapJobs: [], logger: testLogger });
      try {
        assert.equal(second.httpAddress, null, "no endpoint, but the node runs");
        assert.equal((await second.runJob("http_ok", {}, { wait: true })).run?.status, "success");
      } finally {
        await second.stop();
      }
    } finally {
      if (saved === undefined) delete process.env.SCHEDULER_HTTP_ADDR; // (assigning undefined would store "undefined")
      else process.env.SCHEDULER_HTTP_ADDR = saved;
      if (blocked) blocker.close();
    }
  });

  it("opens no port with `off`, defaults to 127.0.0.1:9464, and refuses a bad SCHEDULER_HTTP_ADDR before any database (exit 2)", async () => {
    // Unset stays unset in the settings (so a taken default is told apart from an address asked for); the runner uses the default.
    assert.equal(loadEngineConfig({}).SCHEDULER_HTTP_ADDR, undefined);
    assert.equal(loadEngineConfig({ SCHEDULER_HTTP_ADDR: "127.0.0.1:9464" }).SCHEDULER_HTTP_ADDR, "127.0.0.1:9464");
    assert.equal(DEFAULT_HTTP_ADDR, "127.0.0.1:9464");
    const scheduler = await startScheduler({ pool: db.pool, jobs: [ok], taskDirectory: null, crontab: "", bootstrapJobs: [], logger: testLogger, http: false });
    assert.equal(scheduler.httpAddress, null);
    await scheduler.stop();
    const off = await startScheduler({ pool: db.pool, jobs: [ok], taskDirectory: null, crontab: "", bootstrapJobs: [], logger: testLogger });
    assert.equal(off.httpAddress, null, "SCHEDULER_HTTP_ADDR=off (the test runner's) opens nothing");
    await off.stop();

    for (const bad of ["9464", "localhost:", "127.0.0.1:70000", "[nothing]:80"]) {
      const result = await runCliProcess(["start"], { SCHEDULER_HTTP_ADDR: bad, DATABASE_URL: unreachable });
      assert.equal(result.code, 2, `${bad}: ${result.stderr}`);
      assert.match(result.stderr, /SCHEDULER_HTTP_ADDR=.*host:port|SCHEDULER_HTTP_ADDR=.*out of range|SCHEDULER_HTTP_ADDR=.*IPv6/, bad);
      assert.doesNotMatch(result.stderr, /127\.0\.0\.1:1/, "refused before any database");
    }
  });
});
