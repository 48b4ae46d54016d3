import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { defineJob, SchedulerError, startScheduler, z, type JobResult, type SchedulerHandle } from "../../../src/index.ts";
import { loadEngineConfig } from "../../../src/engine/config.ts";
import { tokensMatch } from "../../../src/engine/http/guard.ts";
import { startHttpServer } from "../../../src/engine/http/server.ts";
import type { Logger } from "../../../src/engine/log.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

// The actions' guard over HTTP, as a script or another site would try them (the browser test,
// dashboard.test.ts, drives the same endpoints through the page).

const db = useTestDatabase();
const TOKEN = "actions-test-token-abcdef";
const ok = defineJob({ name: "act_ok", description: "Succeeds", payload: { n: z.number().int().default(1) }, run: async (): Promise<JobResult> => ({ itemsProcessed: 1, itemsFailed: 0, message: "fine" }) });
let node: SchedulerHandle;
let base: string;

function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}`, ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) }).then(async (response) => ({
    status: response.status,
    body: (await response.json()) as Record<string, unknown>,
    headers: response.headers,
  }));
}
const finished = (jobId: unknown) =>
  eventually(async () => (await db.pool.query("select job_name, payload, dry_run from scheduler.job_runs where job_id = $1 and status = 'success'", [jobId])).rows[0], { what: `run of job ${jobId}` });
const jobs = async () => (await db.pool.query<{ n: number }>("select count(*)::int as n from graphile_worker.jobs where task_identifier = 'act_ok'")).rows[0]!.n;

describe("HTTP actions: POST /api/actions/*", () => {
  before(async () => {
    node = await startScheduler({ pool: db.pool, jobs: [ok], taskDirectory: null, crontab: "0 4 * * * act_ok ?id=act_entry {n: 5}\n", bootstrapJobs: [], logger: testLogger, http: "127.0.0.1:0", httpToken: TOKEN });
    base = `http://${node.httpAddress}`;
  });
  after(() => node?.stop());

  it("refuses a request without the right token, from another site, or not JSON, before touching anything", async () => {
    const refused: [Record<string, string>, string | object, number, RegExp][] = [
      [{ authorization: "" }, { job: "act_ok" }, 401, /no token presented/],
      [{ authorization: "Bearer actions-test-token-abcdeX" }, { job: "act_ok" }, 401, /wrong token/],
      [{ authorization: "Basic eDp5" }, { job: "act_ok" }, 401, /no token presented/],
      [{ origin: "https://evil.example" }, { job: "act_ok" }, 403, /cross-site request refused: Origin/],
      [{ "sec-fetch-site": "cross-site" }, { job: "act_ok" }, 403, /Sec-Fetch-Site is 'cross-site'/],
      [{ "content-type": "application/x-www-form-urlencoded" }, "job=act_ok", 415, /must be JSON/],
      [{ "content-type": "text/plain" }, { job: "act_ok" }, 415, /must be JSON/],
    ];
    for (const [headers, body, status, error] of refused) {
      const answer = await post("/api/actions/run", body, headers);
      assert.equal(answer.status, status, JSON.stringify(headers));
      assert.match(String(answer.body.error), error);
      if (status === 401) assert.match(answer.headers.get("www-authenticate") ?? "", /^Bearer/);
    }
    assert.equal(await jobs(), 0, "nothing was queued");
    const get = await fetch(`${base}/api/actions/run`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST");
    const put = await fetch(`${base}/api/schedules`, { method: "PUT" });
    assert.equal(put.status, 405, "everything else stays read-only");
    assert.equal((await post("/api/actions/drop-tables", {})).status, 404);
  });

  it("runs an entry with its payload as the CLI does, offers a dry run, pauses and resumes; bad input gets 400/404/409", async () => {
    const run = await post("/api/actions/run", { job: "act_entry" });
    assert.equal(run.status, 200);
    const entryRun = await finished(run.body.job_id);
    assert.equal(entryRun.job_name, "act_entry", "recorded under the entry's identifier");
    assert.equal(entryRun.payload.n, 5, "with the entry's payload");
    const dry = await post("/api/actions/dry-run", { job: "act_ok" });
    assert.equal(dry.status, 200);
    assert.equal((await finished(dry.body.job_id)).dry_run, true);

    assert.equal((await post("/api/actions/run", { job: "no_such_job" })).status, 404);
    assert.equal((await post("/api/actions/run", {})).status, 400);
    assert.equal((await post("/api/actions/run", "{not json")).status, 400);
    assert.equal((await post("/api/actions/pause", { job: "act_ok", reason: "x".repeat(501) })).status, 400);

    const pause = await post("/api/actions/pause", { job: "act_ok", reason: "disk full" });
    assert.deepEqual([pause.status, pause.body.paused], [200, true]);
    const paused = (await db.pool.query("select reason, paused_by from scheduler.paused_jobs where job_name = 'act_ok'")).rows[0];
    assert.equal(paused.reason, "disk full");
    assert.match(paused.paused_by, /^dashboard on \S+ \((::ffff:)?127\.0\.0\.1\)$/);
    const refused = await post("/api/actions/run", { job: "act_entry" });
    assert.equal(refused.status, 409, "its entries are paused through the task");
    assert.match(String(refused.body.error), /is paused/);
    const resume = await post("/api/actions/resume", { job: "act_ok" });
    assert.deepEqual([resume.status, resume.body.resumed], [200, true]);
  });

  it("checks SCHEDULER_HTTP_TOKEN: at least 16 printable characters, or the node is refused (exit 2)", async () => {
    assert.equal(loadEngineConfig({}).SCHEDULER_HTTP_TOKEN, undefined);
    assert.equal(loadEngineConfig({ SCHEDULER_HTTP_TOKEN: TOKEN }).SCHEDULER_HTTP_TOKEN, TOKEN);
    for (const bad of ["short", "has a space in it here", "x".repeat(513)]) {
      assert.throws(() => loadEngineConfig({ SCHEDULER_HTTP_TOKEN: bad }), (error: unknown) => error instanceof SchedulerError && error.exitCode === 2 && /SCHEDULER_HTTP_TOKEN=/.test(error.message));
    }
    await assert.rejects(() => startScheduler({ pool: db.pool, jobs: [ok], taskDirectory: null, crontab: "", bootstrapJobs: [], logger: testLogger, httpToken: "short" }), (error: unknown) => error instanceof SchedulerError && error.exitCode === 2 && /httpToken option: at least 16/.test(error.message));
    assert.equal(tokensMatch(TOKEN, TOKEN), true);
    assert.equal(tokensMatch(`${TOKEN}x`, TOKEN), false);
    assert.equal(tokensMatch("", TOKEN), false);
  });

  it("warns when it listens beyond loopback, saying whether the actions are off", async () => {
    for (const token of [null, TOKEN]) {
      const warnings: string[] = [];
      const logger = { warn: (_: unknown, message: string) => warnings.push(message), info: () => {} } as unknown as Logger;
      const endpoint = await startHttpServer({ host: "0.0.0.0", port: 0 }, { readiness: async () => ({ ready: true, problems: [] }), metrics: async () => ({ contentType: "text/plain", body: "" }), api: {}, token }, logger);
      await endpoint.close();
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, token ? /actions need SCHEDULER_HTTP_TOKEN.*TLS/ : /without SCHEDULER_HTTP_TOKEN.*actions stay off/);
    }
  });
});
