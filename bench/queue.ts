// bench:queue — 20k no-op jobs through bare graphile-worker and through our runner, at the
// same concurrency and worker settings, alternating rounds, on one PostgreSQL; jobs/s and
// ratios against bare graphile-worker measured in the same run.
// - our runner, plain task: what the runner itself costs;
// - our runner, defineJob no-op (exclusive: false): what the wrapper costs per run
//   (payload validation, pause check and a history row: two statements per run).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "graphile-worker";
import { startScheduler } from "../src/runner/start.ts";
import { createLogger, graphileLoggerFor } from "../src/log.ts";
import { createTestDatabase } from "../test/helpers/db.ts";

const JOBS = Number(process.env.BENCH_JOBS ?? 20_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const here = path.dirname(fileURLToPath(import.meta.url));
const logger = createLogger("warn", false);
const db = await createTestDatabase();
const workerPreset = { completeJobBatchDelay: 0, failJobBatchDelay: 0 };

async function enqueue(task: string, count: number, queue: string | null): Promise<void> {
  await db.pool.query("delete from graphile_worker._private_jobs");
  await db.pool.query("select graphile_worker.add_job($1, '{}', queue_name => $3) from generate_series(1, $2)", [task, count, queue]);
}

async function drained(): Promise<void> {
  for (;;) {
    const { rows } = await db.pool.query<{ n: number }>("select count(*)::int as n from graphile_worker._private_jobs");
    if (rows[0]!.n === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function bare(count: number, queue: string | null): Promise<number> {
  await enqueue("noop", count, queue);
  const started = performance.now();
  const runner = await run({
    connectionString: db.connectionString,
    taskList: { noop: async () => {} },
    // no cron: run() would otherwise read ./crontab, whose ticks would add jobs of other tasks
    crontab: "",
    noHandleSignals: true,
    logger: graphileLoggerFor(logger),
    preset: { worker: { concurrentJobs: CONCURRENCY, ...workerPreset } },
  });
  await drained();
  const seconds = (performance.now() - started) / 1000;
  await runner.stop();
  return count / seconds;
}

async function ours(task: "noop" | "noop_job", count: number, queue: string | null): Promise<number> {
  await enqueue(task, count, queue);
  const started = performance.now();
  const scheduler = await startScheduler({
    connectionString: db.connectionString,
    taskDirectory: path.join(here, "fixtures/tasks"),
    crontab: "",
    bootstrapJobs: [],
    concurrency: CONCURRENCY,
    logger,
  });
  await drained();
  const seconds = (performance.now() - started) / 1000;
  await scheduler.stop();
  return count / seconds;
}

const results: Record<string, number[]> = { bare: [], runner: [], wrapped: [] };
for (let round = 0; round < ROUNDS; round++) {
  results.bare!.push(await bare(JOBS, null));
  results.runner!.push(await ours("noop", JOBS, null));
  results.wrapped!.push(await ours("noop_job", JOBS, null));
}
await db.drop();

const best = (values: number[]) => Math.max(...values);
const bareRate = best(results.bare!);
console.log(`bench:queue — ${JOBS} no-op jobs, concurrency ${CONCURRENCY}, best of ${ROUNDS} rounds, start-up included in each timing`);
console.log("| setup | jobs/s | ratio vs bare |");
console.log("|---|---|---|");
for (const [name, rate] of [
  ["bare graphile-worker, plain task", bareRate],
  ["our runner, plain task", best(results.runner!)],
  ["our runner, defineJob job (history row per run)", best(results.wrapped!)],
] as const) {
  console.log(`| ${name} | ${Math.round(rate)} | ${(rate / bareRate).toFixed(2)} |`);
}
