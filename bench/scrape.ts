// bench:scrape — the median time of GET /metrics on a node whose database holds 1M history
// rows and 100 schedules (10 of them paused), against a baseline measured in the same run:
// the same cluster gauges read the naive way, one query per schedule per gauge (the loop an
// exporter written against scheduled_jobs would do), checked equal to what /metrics says.
// Scrapes use metricsCacheMs: 0, so every one reads the database (the node's default cache of
// 5 s makes most real scrapes cheaper still; that figure is printed too).
import { defineJob, startScheduler } from "../src/index.ts";
import { createTestDatabase, testLogger } from "../test/helpers/db.ts";
import { parsePrometheus, valueOf } from "../test/helpers/prometheus.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 1_000_000);
const SCHEDULES = Number(process.env.BENCH_SCHEDULES ?? 100);
const SCRAPES = Number(process.env.BENCH_SCRAPES ?? 50);
if (!process.env.TEST_DATABASE_URL && process.env.DATABASE_URL) process.env.TEST_DATABASE_URL = process.env.DATABASE_URL;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

const db = await createTestDatabase();
let failed = false;
try {
  const job = defineJob({ name: "bench_scrape", description: "Never runs here", payload: {}, run: async () => ({ itemsProcessed: 0, itemsFailed: 0, message: "" }) });
  const names = Array.from({ length: SCHEDULES }, (_, i) => `scrape_${String(i).padStart(3, "0")}`);
  const crontab = names.map((name, i) => `${i % 60} ${i % 24} * * * bench_scrape ?id=${name}`).join("\n");

  // History: RUNS rows over 30 days across the schedules, ~90% success, 8% failed, 2% skipped, 0.2% missed.
  const seeded = performance.now();
  await db.pool.query(
    `insert into scheduler.job_runs (job_name, task, node_id, scheduled_for, started_at, finished_at, duration_ms, status)
     select 'scrape_' || lpad((g % $2)::text, 3, '0'), 'bench_scrape', 'bench-node',
            t, t + interval '1 second', t + interval '3 seconds', 2000,
            case when g % 500 = 7 then 'missed' when g % 50 = 0 then 'skipped' when g % 12 = 0 then 'failed' else 'success' end
     from generate_series(1, $1) g, lateral (select now() - interval '30 days' + g * (interval '30 days' / $1) as t) x`,
    [RUNS, SCHEDULES],
  );
  await db.pool.query("analyze scheduler.job_runs");
  console.log(`seeded ${RUNS} history rows in ${Math.round(performance.now() - seeded)} ms`);

  const scheduler = await startScheduler({ pool: db.pool, jobs: [job], taskDirectory: null, crontab, bootstrapJobs: [], logger: testLogger, http: "127.0.0.1:0", metricsCacheMs: 0, platform: false });
  for (const name of names.slice(0, 10)) await db.pool.query("select scheduler.pause_job($1, 'bench')", [name]);
  const url = `http://${scheduler.httpAddress}/metrics`;
  const scrape = async () => (await fetch(url)).text();
  try {
    // The baseline: per schedule, its pause, next run and last success each asked on its own.
    const naive = async () => {
      const gauges = new Map<string, { paused: number; next: number | null; last: number | null; late: number; missed: number }>();
      const { rows } = await db.pool.query<{ job_name: string; task: string }>("select job_name, task from scheduler.schedules order by job_name");
      for (const { job_name, task } of rows) {
        const paused = (await db.pool.query<{ p: boolean }>("select exists (select 1 from scheduler.paused_jobs where job_name in ($1, $2)) as p", [job_name, task])).rows[0]!.p;
        const next = paused ? null : (await db.pool.query<{ t: number }>("select extract(epoch from scheduler.schedule_next(s, now()))::float8 as t from scheduler.schedules s where job_name = $1", [job_name])).rows[0]!.t;
        const last = (await db.pool.query<{ t: number | null }>("select extract(epoch from max(finished_at))::float8 as t from scheduler.job_runs where job_name = $1 and status = 'success'", [job_name])).rows[0]!.t;
        const late = !paused && (await db.pool.query<{ late: boolean }>("select scheduler.overdue_tick(s, now()) is not null as late from scheduler.schedules s where job_name = $1", [job_name])).rows[0]!.late;
        const missed = (await db.pool.query<{ n: number }>("select count(*)::int as n from scheduler.job_runs where job_name = $1 and status = 'missed'", [job_name])).rows[0]!.n;
        gauges.set(job_name, { paused: paused ? 1 : 0, next, last, late: late ? 1 : 0, missed });
      }
      await db.pool.query("select count(*) from scheduler.nodes where stopped_at is null");
      await db.pool.query("select count(*) from graphile_worker.jobs");
      return gauges;
    };

    // Equal figures first, then timings, warm on both sides.
    const expected = await naive();
    const samples = parsePrometheus(await scrape());
    for (const [job, gauge] of expected) {
      const check = (metric: string, want: number | null) => {
        const got = valueOf(samples, metric, { job });
        if ((want === null && got !== undefined) || (want !== null && got !== want)) throw new Error(`${metric}{job="${job}"}: /metrics says ${got}, the naive queries ${want}`);
      };
      check("scheduler_schedule_paused", gauge.paused);
      check("scheduler_schedule_next_run_timestamp_seconds", gauge.next);
      check("scheduler_schedule_last_success_timestamp_seconds", gauge.last);
      check("scheduler_schedule_late", gauge.late);
      check("scheduler_schedule_missed_total", gauge.missed);
    }
    console.log(`checked: /metrics and the naive queries agree on ${expected.size} schedules (paused, next run, last success, late, missed)`);

    const scrapeTimes: number[] = [];
    const naiveTimes: number[] = [];
    for (let i = 0; i < SCRAPES; i++) {
      // Alternating which goes first, so neither always finds the other's cache warm.
      if (i % 2 === 0) {
        scrapeTimes.push(await timed(scrape));
        naiveTimes.push(await timed(naive));
      } else {
        naiveTimes.push(await timed(naive));
        scrapeTimes.push(await timed(scrape));
      }
    }
    const scrapeMs = median(scrapeTimes);
    const naiveMs = median(naiveTimes);
    await scheduler.stop();

    const cached = await startScheduler({ pool: db.pool, jobs: [job], taskDirectory: null, crontab, bootstrapJobs: [], logger: testLogger, http: "127.0.0.1:0", platform: false });
    const cachedUrl = `http://${cached.httpAddress}/metrics`;
    await fetch(cachedUrl).then((r) => r.text());
    const cachedTimes: number[] = [];
    for (let i = 0; i < SCRAPES; i++) cachedTimes.push(await timed(() => fetch(cachedUrl).then((r) => r.text())));
    await cached.stop();

    const version = (await db.pool.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]!.v;
    console.log(`bench:scrape — PostgreSQL ${version}, ${RUNS} history rows, ${SCHEDULES} schedules, median of ${SCRAPES}`);
    console.log(`  GET /metrics, gauges read every scrape : ${scrapeMs.toFixed(1)} ms (target < 50 ms)`);
    console.log(`  GET /metrics, default 5 s cache       : ${median(cachedTimes).toFixed(1)} ms`);
    console.log(`  naive per-schedule queries (baseline) : ${naiveMs.toFixed(1)} ms`);
    console.log(`  ratio baseline / scrape               : ${(naiveMs / scrapeMs).toFixed(1)}x`);
    if (scrapeMs >= 50) {
      console.error(`FAIL: median scrape ${scrapeMs.toFixed(1)} ms is not under 50 ms`);
      failed = true;
    }
  } finally {
    await scheduler.stop();
  }
} finally {
  await db.drop();
}
process.exit(failed ? 1 : 0);
