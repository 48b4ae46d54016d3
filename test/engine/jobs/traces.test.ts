// With an OpenTelemetry SDK registered, queueing a run is a PRODUCER "send" span whose context is
// stored in the payload (`_trace`), and each attempt is a CONSUMER "process" span linked to it,
// with the messaging attributes and ours, ERROR on a failing attempt, a span of its own for each
// retry or deferral. `_trace` reaches no job and no history row. (Registration is global to the
// process: traces_off.test.ts checks the scheduler without an SDK.)
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { context, propagation, SpanKind, SpanStatusCode, trace, type SpanContext } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { z } from "zod";
import { defineJob } from "../../../src/engine/jobs/define.ts";
import { pauseJob, resumeJob } from "../../../src/engine/runner/manual.ts";
import type { SchedulerHandle } from "../../../src/engine/runner/options.ts";
import { startScheduler } from "../../../src/scheduler.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

const exporter = new InMemorySpanExporter();
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }));
const app = trace.getTracer("test-application");

const db = useTestDatabase();

/** What each attempt of traced_job saw: its payload and the span active in it. */
const seen: { tag: string; payload: Record<string, unknown>; active: SpanContext | undefined }[] = [];

const tracedJob = defineJob({
  name: "traced_job",
  description: "records what it sees; fails its first attempt when asked",
  payload: { tag: z.string(), failFirst: z.boolean().default(false) },
  async run({ payload, attempt }) {
    seen.push({ tag: payload.tag, payload, active: trace.getActiveSpan()?.spanContext() });
    if (payload.failFirst && attempt === 1) throw new Error(`first attempt of ${payload.tag} fails`);
    return { itemsProcessed: 1, itemsFailed: 0, message: payload.tag };
  },
});

let node: SchedulerHandle | undefined;
let taskDirectory: string;

const spansOf = (jobId: string, kind: SpanKind) =>
  exporter.getFinishedSpans().filter((span) => span.kind === kind && span.attributes["messaging.message.id"] === jobId);

async function processSpans(jobId: string, count: number): Promise<ReadableSpan[]> {
  return eventually(async () => {
    const spans = spansOf(jobId, SpanKind.CONSUMER);
    return spans.length >= count && spans;
  }, { timeoutMs: 20_000, what: `${count} process span(s) of job ${jobId}` });
}

/** Queues a run through runJob inside an application span, as an instrumented caller would. */
async function runInsideSpan(name: string, payload: Record<string, unknown>, wait = true) {
  return app.startActiveSpan("application request", async (request) => {
    try {
      const queued = await node!.runJob(name, payload, { wait, timeoutMs: 20_000 });
      return { queued, request: request.spanContext() };
    } finally {
      request.end();
    }
  });
}

const historyPayloads = async (jobId: string) =>
  (await db.pool.query<{ payload: unknown }>("select payload from scheduler.job_runs where job_id = $1 order by id", [jobId])).rows.map((row) => row.payload);

describe("traces with an OpenTelemetry SDK registered", () => {
  before(async () => {
    taskDirectory = fs.mkdtempSync(path.join(os.tmpdir(), "sps-traces-"));
    // A plain graphile-worker task file, as a user writes one: it keeps what it was handed.
    fs.writeFileSync(path.join(taskDirectory, "plain_traced.js"), "export default async (payload) => { (globalThis.plainTracedSeen ??= []).push(payload); };\n");
    node = await startScheduler({
      connectionString: db.connectionString,
      taskDirectory,
      jobs: [tracedJob],
      crontab: "",
      bootstrapJobs: [],
      services: false,
      concurrency: 2,
      pollIntervalMs: 200,
      logger: testLogger,
    });
  });
  after(async () => {
    await node?.stop();
    fs.rmSync(taskDirectory, { recursive: true, force: true });
  });

  it("runJob in a span: a send span under it, and one process span linked to the send span", async () => {
    const { queued, request } = await runInsideSpan("traced_job", { tag: "linked" });
    assert.equal(queued.run?.status, "success");
    const [processSpan] = await processSpans(queued.jobId, 1);
    const [send] = spansOf(queued.jobId, SpanKind.PRODUCER);
    assert.ok(send, "a send span for the queued run");
    assert.equal(send.name, "send traced_job");
    assert.equal(send.parentSpanContext?.spanId, request.spanId, "the send span is a child of the caller's span");
    assert.equal(send.spanContext().traceId, request.traceId);
    assert.deepEqual(
      { system: send.attributes["messaging.system"], type: send.attributes["messaging.operation.type"], destination: send.attributes["messaging.destination.name"] },
      { system: "graphile_worker", type: "send", destination: "traced_job" },
    );

    assert.equal(processSpan!.name, "process traced_job");
    assert.equal(processSpan!.parentSpanContext, undefined, "a process span is a root: linked, not a child");
    assert.equal(processSpan!.links.length, 1);
    assert.equal(processSpan!.links[0]!.context.traceId, request.traceId);
    assert.equal(processSpan!.links[0]!.context.spanId, send.spanContext().spanId, "linked to the send span, the run's creation context");
    assert.equal(processSpan!.status.code, SpanStatusCode.UNSET);
    const { rows } = await db.pool.query<{ id: string }>("select id from scheduler.job_runs where job_id = $1", [queued.jobId]);
    assert.deepEqual(processSpan!.attributes, {
      "messaging.system": "graphile_worker",
      "messaging.operation.name": "process",
      "messaging.operation.type": "process",
      "messaging.destination.name": "traced_job",
      "messaging.message.id": queued.jobId,
      "messaging.client.id": node!.nodeId,
      "systemprompt_scheduler.job": "traced_job",
      "systemprompt_scheduler.task": "traced_job",
      "systemprompt_scheduler.attempt": 1,
      "systemprompt_scheduler.node": node!.nodeId,
      "systemprompt_scheduler.dry_run": false,
      "systemprompt_scheduler.run_id": rows[0]!.id,
      "systemprompt_scheduler.outcome": "success",
    });

    const attempt = seen.find((entry) => entry.tag === "linked")!;
    assert.equal(attempt.active?.spanId, processSpan!.spanContext().spanId, "the job runs inside its process span");
    assert.deepEqual(attempt.payload, { tag: "linked", failFirst: false, enforce: true }, "the job never sees _trace");
    assert.deepEqual(await historyPayloads(queued.jobId), [{ tag: "linked", failFirst: false, enforce: true }]);
  });

  it("a failing attempt is an ERROR span with the exception; its retry has a span of its own, linked the same", async () => {
    const { queued, request } = await runInsideSpan("traced_job", { tag: "retried", failFirst: true }, false);
    const spans = await processSpans(queued.jobId, 2);
    const [first, second] = [...spans].sort((a, b) => Number(a.attributes["systemprompt_scheduler.attempt"]) - Number(b.attributes["systemprompt_scheduler.attempt"]));
    assert.equal(first!.attributes["systemprompt_scheduler.attempt"], 1);
    assert.equal(first!.attributes["systemprompt_scheduler.outcome"], "failed");
    assert.deepEqual(first!.status, { code: SpanStatusCode.ERROR, message: "first attempt of retried fails" });
    assert.equal(first!.attributes["error.type"], "Error");
    assert.ok(first!.events.some((event) => event.name === "exception" && event.attributes?.["exception.message"] === "first attempt of retried fails"), "the exception is recorded");
    assert.equal(second!.attributes["systemprompt_scheduler.attempt"], 2);
    assert.equal(second!.attributes["systemprompt_scheduler.outcome"], "success");
    assert.equal(second!.status.code, SpanStatusCode.UNSET);
    const [send] = spansOf(queued.jobId, SpanKind.PRODUCER);
    for (const span of [first!, second!]) {
      assert.equal(span.links[0]?.context.spanId, send!.spanContext().spanId);
      assert.equal(span.links[0]?.context.traceId, request.traceId);
    }
    assert.equal((await historyPayloads(queued.jobId)).some((payload) => JSON.stringify(payload).includes("_trace")), false);
  });

  it("a plain task file's attempt has its span; the task is handed its payload without _trace", async () => {
    const { queued, request } = await runInsideSpan("plain_traced", { n: 1 });
    assert.equal(queued.run?.status, "success");
    const [span] = await processSpans(queued.jobId, 1);
    assert.equal(span!.name, "process plain_traced");
    assert.equal(span!.kind, SpanKind.CONSUMER);
    assert.equal(span!.links[0]?.context.traceId, request.traceId);
    assert.equal(span!.attributes["systemprompt_scheduler.task"], "plain_traced");
    assert.equal(span!.attributes["systemprompt_scheduler.outcome"], "success");
    assert.deepEqual((globalThis as { plainTracedSeen?: unknown[] }).plainTracedSeen, [{ n: 1 }]);
    assert.deepEqual(await historyPayloads(queued.jobId), [{ n: 1 }]);
  });

  it("a SQL caller's _trace is the link; a strict payload schema does not reject it; dry runs show", async () => {
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const { rows } = await db.pool.query<{ id: string }>(
      "select id from graphile_worker.add_job('traced_job', json_build_object('tag', 'from sql', 'enforce', false, '_trace', json_build_object('traceparent', $1::text, 'tracestate', 'vendor=x')))",
      [traceparent],
    );
    const [span] = await processSpans(rows[0]!.id, 1);
    assert.equal(span!.attributes["systemprompt_scheduler.outcome"], "success");
    assert.equal(span!.attributes["systemprompt_scheduler.dry_run"], true);
    const link = span!.links[0]!.context;
    assert.deepEqual([link.traceId, link.spanId, link.traceFlags, link.traceState?.serialize()], ["0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1, "vendor=x"]);
    assert.deepEqual(seen.find((entry) => entry.tag === "from sql")?.payload, { tag: "from sql", failFirst: false, enforce: false });

    // A _trace that is not W3C Trace Context is no link, and no reason to fail the run.
    const bad = await db.pool.query<{ id: string }>("select id from graphile_worker.add_job('traced_job', '{\"tag\": \"bad trace\", \"_trace\": {\"traceparent\": \"not-a-traceparent\"}}'::json)");
    const [unlinked] = await processSpans(bad.rows[0]!.id, 1);
    assert.deepEqual([unlinked!.links, unlinked!.attributes["systemprompt_scheduler.outcome"]], [[], "success"]);
  });

  it("a cron tick has no creation context: a root span with no link, and its tick", async () => {
    const tick = "2031-01-01T03:00:00.000Z";
    const { rows } = await db.pool.query<{ id: string }>("select id from graphile_worker.add_job('traced_job', json_build_object('tag', 'tick', '_cron', json_build_object('ts', $1::text)))", [tick]);
    const [span] = await processSpans(rows[0]!.id, 1);
    assert.equal(span!.parentSpanContext, undefined);
    assert.deepEqual(span!.links, []);
    assert.equal(span!.attributes["systemprompt_scheduler.scheduled_for"], tick);
  });

  it("a paused job's attempt is 'skipped'; one deferred behind its task's lock is 'deferred', then runs", async () => {
    await pauseJob(db.pool, "traced_job", "traces test", "test");
    const paused = await db.pool.query<{ id: string }>("select id from graphile_worker.add_job('traced_job', '{\"tag\": \"paused\"}'::json)");
    const [skipped] = await processSpans(paused.rows[0]!.id, 1);
    assert.deepEqual([skipped!.attributes["systemprompt_scheduler.outcome"], skipped!.attributes["systemprompt_scheduler.skip_reason"]], ["skipped", "paused"]);
    assert.equal(skipped!.status.code, SpanStatusCode.UNSET);
    await resumeJob(db.pool, "traced_job", "test");

    const lockKey = "systemprompt-scheduler:job:traced_job";
    const holder = await db.pool.connect();
    try {
      await holder.query("select pg_advisory_lock(hashtextextended($1, 0))", [lockKey]);
      const waiting = await db.pool.query<{ id: string }>("select id from graphile_worker.add_job('traced_job', '{\"tag\": \"deferred\"}'::json)");
      const jobId = waiting.rows[0]!.id;
      const [deferred] = await processSpans(jobId, 1);
      assert.equal(deferred!.attributes["systemprompt_scheduler.outcome"], "deferred");
      assert.equal(deferred!.status.code, SpanStatusCode.UNSET, "waiting for the lock is no error");
      await holder.query("select pg_advisory_unlock(hashtextextended($1, 0))", [lockKey]);
      await holder.query("select scheduler.wake_lock_waiters($1)", [lockKey]);
      const spans = await eventually(async () => {
        const all = spansOf(jobId, SpanKind.CONSUMER);
        return all.some((span) => span.attributes["systemprompt_scheduler.outcome"] === "success") && all;
      }, { timeoutMs: 20_000, what: "the deferred run to run" });
      assert.ok(spans.every((span) => span.attributes["systemprompt_scheduler.attempt"] === 1), "a deferral gives its attempt back");
    } finally {
      holder.release();
    }
  });
});
