// bench:queue — the path every shipped job takes, against bare graphile-worker on the same work.
//
// N jobs spread over K tasks, each job in its task's queue (as the crontab and `run` queue
// them), run by:
// - bare graphile-worker: no-op task functions;
// - our runner with defineJob jobs, exclusive (the default; every shipped job is): payload
//   validation, pause check, the task's run lock and a history row per run.
// Both sides get the same concurrency, the same pool size and the same worker settings, and
// alternate rounds on one PostgreSQL; start-up is included in each timing. The bench checks
// that every job ran and, for ours, that exactly N history rows were written, all 'success'.
// A third row shows a job defined with exclusive: false (no run lock), a fourth plain
// graphile-worker task functions in task files.
import { run } from "graphile-worker";
import { defineJob, type DefinedJob } from "../src/engine/jobs/define.ts";
import { startScheduler } from "../src/scheduler.ts";
import { createLogger, graphileLoggerFor } from "../src/engine/log.ts";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createTestDatabase } from "../test/helpers/db.ts";

const JOBS = Number(process.env.BENCH_JOBS ?? 10_000);
const TASKS = Number(process.env.BENCH_TASKS ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
// What a node uses: concurrency + 1 pooled and its own session (src/engine/runner/start.ts);
// bare graphile-worker gets as many in its pool (its LISTEN connection is one of them).
const POOL_SIZE = CONCURRENCY + 2;
const logger = createLogger("warn", false);
const db = await createTestDatabase();
const workerPreset = { completeJobBatchDelay: 0, failJobBatchDelay: 0 };
const taskNames = Array.from({ length: TASKS }, (_, i) => `bench_task_${i}`);
// Plain graphile-worker task functions as task files: run through our runner, they get the
// pause check and a history row, but no payload schema, timeout or run lock.
const plainTasks = fs.mkdtempSync(path.join(os.tmpdir(), "sps-bench-plain-"));
for (const name of taskNames) fs.writeFileSync(path.join(plainTasks, `${name}.js`), "export default async () => {};\n");

function noopJob(name: string, exclusive: boolean): DefinedJob {
  return defineJob({
    name,
    description: "does nothing, with a history row",
    payload: {},
    exclusive,
    async run() {
      return { itemsProcessed: 0, itemsFailed: 0, message: "noop" };
    },
  });
}

async function enqueue(count: number): Promise<void> {
  await db.pool.query("delete from graphile_worker._private_jobs; delete from scheduler.job_runs");
  await db.pool.query(
    "select graphile_worker.add_job(t, '{}', queue_name => t) from generate_series(0, $1 - 1) i, lateral (select ($2::text[])[i % $3 + 1] as t) task",
    [count, taskNames, taskNames.length],
  );
}

async function drained(): Promise<void> {
  for (;;) {
    const { rows } = await db.pool.query<{ n: number }>("select count(*)::int as n from graphile_worker._private_jobs");
    if (rows[0]!.n === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function bare(count: number): Promise<number> {
  await enqueue(count);
  const started = performance.now();
  const runner = await run({
    connectionString: db.connectionString,
    taskList: Object.fromEntries(taskNames.map((name) => [name, async () => {}])),
    // no cron: run() would otherwise read ./crontab, whose ticks would add jobs of other tasks
    crontab: "",
    noHandleSignals: true,
    logger: graphileLoggerFor(logger),
    preset: { worker: { concurrentJobs: CONCURRENCY, maxPoolSize: POOL_SIZE, ...workerPreset } },
  });
  await drained();
  const seconds = (performance.now() - started) / 1000;
  await runner.stop();
  return count / seconds;
}

async function ours(count: number, jobs: "exclusive" | "shared" | "plain"): Promise<number> {
  await enqueue(count);
  const started = performance.now();
  const scheduler = await startScheduler({
    connectionString: db.connectionString,
    taskDirectory: jobs === "plain" ? plainTasks : null,
    jobs: jobs === "plain" ? [] : taskNames.map((name) => noopJob(name, jobs === "exclusive")),
    crontab: "",
    bootstrapJobs: [],
    services: false,
    concurrency: CONCURRENCY,
    logger,
  });
  await drained();
  const seconds = (performance.now() - started) / 1000;
  await scheduler.stop();
  const { rows } = await db.pool.query<{ n: number; ok: number }>("select count(*)::int as n, count(*) filter (where status = 'success')::int as ok from scheduler.job_runs");
  if (rows[0]!.n !== count || rows[0]!.ok !== count) {
    throw new Error(`expected ${count} successful history rows, found ${rows[0]!.n} (${rows[0]!.ok} successful)`);
  }
  return count / seconds;
}

const results: Record<"bare" | "exclusive" | "shared" | "plain", number[]> = { bare: [], exclusive: [], shared: [], plain: [] };
for (let round = 0; round < ROUNDS; round++) {
  results.bare.push(await bare(JOBS));
  results.exclusive.push(await ours(JOBS, "exclusive"));
  results.shared.push(await ours(JOBS, "shared"));
  results.plain.push(await ours(JOBS, "plain"));
}
await db.drop();
fs.rmSync(plainTasks, { recursive: true, force: true });

const best = (values: number[]) => Math.max(...values);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
const bareRate = best(results.bare);
console.log(`bench:queue — ${JOBS} no-op jobs over ${TASKS} tasks, each in its task's queue; concurrency ${CONCURRENCY}, pool ${POOL_SIZE} on both sides; best of ${ROUNDS} rounds, start-up included`);
console.log("| setup | jobs/s | ratio vs bare |");
console.log("|---|---|---|");
for (const [name, rate] of [
  ["bare graphile-worker, no-op tasks", bareRate],
  ["our runner, defineJob jobs, exclusive (every shipped job): lock, pause check, history row", best(results.exclusive)],
  ["our runner, defineJob jobs, exclusive: false", best(results.shared)],
  ["our runner, plain task functions (pause check, history row)", best(results.plain)],
] as const) {
  console.log(`| ${name} | ${Math.round(rate)} | ${(rate / bareRate).toFixed(2)} |`);
}
// The machine's noise shows in the rounds: each one, and the ratio of the medians.
for (const [name, rates] of Object.entries(results)) {
  console.log(`${name}: rounds ${rates.map((rate) => Math.round(rate)).join(", ")} jobs/s; median ${Math.round(median(rates))}, ratio of medians vs bare ${(median(rates) / median(results.bare)).toFixed(2)}`);
}
