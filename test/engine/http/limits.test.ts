import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { defineJob, startScheduler, type JobResult } from "../../../src/index.ts";
import { startHttpServer, MAX_IN_FLIGHT } from "../../../src/engine/http/server.ts";
import { HTTP_STATEMENT_TIMEOUT_MS } from "../../../src/engine/http/http-pool.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { startTcpProxy } from "../../helpers/tcp-proxy.ts";
import { eventually } from "../../helpers/wait.ts";

// What the endpoint's readers (unauthenticated, polled) may cost the node: connections of
// their own, a statement timeout, a cap on requests served at once, and fast 503s while the
// database is away, all with real requests.

const db = useTestDatabase();
const ok = defineJob({ name: "lim_ok", description: "Succeeds", payload: {}, run: async (): Promise<JobResult> => ({ itemsProcessed: 1, itemsFailed: 0, message: "fine" }) });

async function timedGet(url: string, timeoutMs = 8000): Promise<{ status: number; ms: number; body: string; retryAfter: string | null }> {
  const started = Date.now();
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const body = await response.text();
  return { status: response.status, ms: Date.now() - started, body, retryAfter: response.headers.get("retry-after") };
}

describe("HTTP endpoint limits", () => {
  it("reads on a pool of its own: every worker connection taken, the API still answers", async (t) => {
    const node = await startScheduler({ connectionString: db.connectionString, jobs: [ok], taskDirectory: null, crontab: "0 4 * * * lim_ok\n", bootstrapJobs: [], logger: testLogger, http: "127.0.0.1:0", platform: false, concurrency: 1 });
    t.after(() => node.stop());
    // The node's pool: one connection per worker and one for its bookkeeping, all taken here.
    const held = [];
    for (let i = 0; i < node.pool.options.max; i++) held.push(await node.pool.connect());
    try {
      const base = `http://${node.httpAddress}`;
      for (const path of ["/api/schedules", "/api/runs", "/api/nodes", "/readyz", "/metrics"]) {
        const answer = await timedGet(`${base}${path}`);
        assert.equal(answer.status, 200, `${path}: ${answer.body.slice(0, 200)}`);
        assert.ok(answer.ms < 1500, `${path} answered in ${answer.ms} ms`);
      }
    } finally {
      for (const client of held) client.release();
    }
  });

  it("cuts a statement at the statement timeout: 503 in about 2 s, not a wait for the lock", async (t) => {
    const node = await startScheduler({ pool: db.pool, jobs: [ok], taskDirectory: null, crontab: "0 4 * * * lim_ok\n", bootstrapJobs: [], logger: testLogger, http: "127.0.0.1:0", platform: false });
    t.after(() => node.stop());
    const locker = await db.pool.connect();
    try {
      await locker.query("begin");
      await locker.query("lock table scheduler.schedules in access exclusive mode");
      const answer = await timedGet(`http://${node.httpAddress}/api/schedules`);
      assert.equal(answer.status, 503, answer.body);
      assert.match(answer.body, /did not answer in time/);
      assert.ok(answer.ms >= HTTP_STATEMENT_TIMEOUT_MS - 200 && answer.ms < HTTP_STATEMENT_TIMEOUT_MS + 1500, `answered after ${answer.ms} ms`);
      assert.equal(answer.retryAfter, "5");
    } finally {
      await locker.query("rollback");
      locker.release();
    }
    assert.equal((await timedGet(`http://${node.httpAddress}/api/schedules`)).status, 200);
  });

  it("answers 503 within seconds while the database is silent, keeps /healthz, and recovers", async (t) => {
    const proxy = await startTcpProxy({ host: new URL(db.connectionString).hostname, port: Number(new URL(db.connectionString).port || 5432) });
    t.after(() => proxy.close());
    const node = await startScheduler({ connectionString: proxy.urlFor(db.connectionString), jobs: [ok], taskDirectory: null, crontab: "0 4 * * * lim_ok\n", bootstrapJobs: [], logger: testLogger, http: "127.0.0.1:0", platform: false, concurrency: 1 });
    t.after(() => node.stop({ hurry: true }));
    const base = `http://${node.httpAddress}`;
    assert.equal((await timedGet(`${base}/api/schedules`)).status, 200);

    proxy.blackhole();
    const answers = await Promise.all(["/api/schedules", "/api/runs", "/api/nodes", "/api/runs?status=failed"].map((path) => timedGet(`${base}${path}`)));
    for (const answer of answers) {
      assert.equal(answer.status, 503, answer.body);
      assert.ok(answer.ms < 5000, `503 after ${answer.ms} ms`);
    }
    const health = await timedGet(`${base}/healthz`);
    assert.deepEqual([health.status, health.ms < 500], [200, true]);
    const metrics = await timedGet(`${base}/metrics`);
    assert.equal(metrics.status, 200, "the last values, without waiting for the database");
    assert.ok(metrics.ms < 4000, `/metrics after ${metrics.ms} ms`);

    proxy.restore();
    await eventually(async () => (await timedGet(`${base}/api/schedules`)).status === 200, { timeoutMs: 20_000, what: "the API to answer again" });
  });

  it(`serves at most ${MAX_IN_FLIGHT} requests at once: one more gets 429 with Retry-After, /healthz still answers`, async (t) => {
    let started = 0;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const endpoint = await startHttpServer(
      { host: "127.0.0.1", port: 0 },
      {
        readiness: async () => ({ ready: true, problems: [] }),
        metrics: async () => ({ contentType: "text/plain", body: "" }),
        api: {
          slow: async () => {
            started += 1;
            await gate;
            return { done: true };
          },
          quick: async () => ({ done: true }),
        },
      },
      testLogger,
    );
    t.after(() => endpoint.close());
    const base = `http://127.0.0.1:${endpoint.address.port}`;
    const slow = Array.from({ length: MAX_IN_FLIGHT }, () => timedGet(`${base}/api/slow`));
    await eventually(async () => started === MAX_IN_FLIGHT, { what: `${MAX_IN_FLIGHT} requests being served` });
    const refused = await timedGet(`${base}/api/quick`);
    assert.equal(refused.status, 429, refused.body);
    assert.equal(refused.retryAfter, "1");
    assert.equal((await timedGet(`${base}/metrics`)).status, 429);
    assert.equal((await timedGet(`${base}/healthz`)).status, 200);
    open();
    assert.deepEqual((await Promise.all(slow)).map((answer) => answer.status), Array(MAX_IN_FLIGHT).fill(200));
    assert.equal((await timedGet(`${base}/api/quick`)).status, 200, "served again once they are done");
  });
});
