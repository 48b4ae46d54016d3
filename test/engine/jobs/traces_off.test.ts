// Without an OpenTelemetry SDK (nothing registered in this process; traces.test.ts registers one
// in its own), tracing costs nothing visible: no active span in a job, no `_trace` stored when a
// run is queued. A `_trace` a SQL caller stored is still stripped: a strict payload schema does
// not reject it, and neither a job, a plain task nor a history row sees it.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { trace } from "@opentelemetry/api";
import { z } from "zod";
import { defineJob } from "../../../src/engine/jobs/define.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { enqueueRun, requestForTask } from "../../../src/engine/runner/run-request.ts";
import { startScheduler } from "../../../src/scheduler.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

const db = useTestDatabase();
const app = trace.getTracer("test-application");
const seen: { payload: Record<string, unknown>; activeSpan: boolean }[] = [];

const untraced = defineJob({
  name: "untraced_job",
  description: "records what it sees",
  payload: { tag: z.string() },
  async run({ payload }) {
    seen.push({ payload, activeSpan: trace.getActiveSpan() !== undefined });
    return { itemsProcessed: 1, itemsFailed: 0, message: payload.tag };
  },
});

const sqlTrace = { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" };
let node: SchedulerHandle | undefined;
let taskDirectory: string;

const historyPayloads = async (task: string) =>
  (await db.pool.query<{ payload: unknown }>("select payload from scheduler.job_runs where task = $1 order by id", [task])).rows.map((row) => row.payload);

describe("traces without an OpenTelemetry SDK", () => {
  before(async () => {
    taskDirectory = fs.mkdtempSync(path.join(os.tmpdir(), "sps-traces-off-"));
    fs.writeFileSync(path.join(taskDirectory, "plain_untraced.js"), "export default async (payload) => { (globalThis.plainUntracedSeen ??= []).push(payload); };\n");
  });
  after(async () => {
    await node?.stop();
    fs.rmSync(taskDirectory, { recursive: true, force: true });
  });

  it("queueing a run, even inside an application's span, stores no _trace", async () => {
    // No node runs yet: the queued job stays as stored.
    const { jobId } = await app.startActiveSpan("application request", async (span) => {
      try {
        return await enqueueRun(db.pool, requestForTask("untraced_job", { tag: "queued" }));
      } finally {
        span.end();
      }
    });
    const { rows } = await db.pool.query<{ payload: unknown }>("select payload from graphile_worker._private_jobs where id = $1", [jobId]);
    assert.deepEqual(rows[0]?.payload, { tag: "queued" });
  });

  it("jobs run with no active span; a SQL caller's _trace reaches no job, plain task or history row", async () => {
    await db.pool.query("select graphile_worker.add_job('untraced_job', $1::json)", [JSON.stringify({ tag: "from sql", _trace: sqlTrace })]);
    await db.pool.query("select graphile_worker.add_job('plain_untraced', $1::json)", [JSON.stringify({ n: 1, _trace: sqlTrace })]);
    node = await startScheduler({
      connectionString: db.connectionString,
      taskDirectory,
      jobs: [untraced],
      crontab: "",
      bootstrapJobs: [],
      services: false,
      concurrency: 2,
      logger: testLogger,
    });
    await eventually(async () => (await db.pool.query("select count(*)::int as n from scheduler.job_runs where status = 'success'")).rows[0].n === 3, { what: "the three runs" });
    assert.deepEqual(
      seen.map((entry) => entry.payload).sort((a, b) => String(a.tag).localeCompare(String(b.tag))),
      [{ tag: "from sql", enforce: true }, { tag: "queued", enforce: true }],
    );
    assert.equal(seen.some((entry) => entry.activeSpan), false, "no span is active in a job");
    assert.deepEqual((globalThis as { plainUntracedSeen?: unknown[] }).plainUntracedSeen, [{ n: 1 }]);
    assert.deepEqual((await historyPayloads("untraced_job")).map((payload) => (payload as { tag: string }).tag).sort(), ["from sql", "queued"]);
    assert.equal(JSON.stringify(await historyPayloads("untraced_job")).includes("_trace"), false);
    assert.deepEqual(await historyPayloads("plain_untraced"), [{ n: 1 }]);
  });
});
