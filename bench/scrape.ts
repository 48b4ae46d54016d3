// bench:scrape — what the HTTP endpoint's polled reads cost with 1M history rows
// (BENCH_RUNS), for 100, 1,000 and 5,000 crontab entries (BENCH_SCRAPE_ENTRIES, or the first
// argument: a comma-separated list), each entry at a random minute and hour in one of three
// zones, 10% paused, 5% late (the others ran their latest tick); 10,000 waiting jobs (BENCH_QUEUED_JOBS) and 200 stopped nodes
// (BENCH_NODE_ROWS) for /api/nodes?all=true. The history is written on the schema as it was
// before sql/engine/025 and the database then migrated, as an upgrade would (the migration's
// time is printed). Measured, median of BENCH_SCRAPES, the two sides alternating:
//
// - new: GET /metrics (gauges recomputed every scrape: metricsCacheMs 0, so every scrape also
//   wins the cluster's cache), GET /api/schedules, GET /api/runs?status=failed,
//   GET /api/nodes?all=true over HTTP from a real node, and `select * from scheduled_jobs
//   where late`; the gauges statement again when another node's figures are fresh.
// - baseline: the SQL those endpoints ran before (bench/fixtures/before-025/), on the same
//   data in the same run, in-process (no HTTP); /api/schedules includes the old handler's
//   assembly in JavaScript, /api/runs runs without 025's two status indexes (dropped inside
//   a transaction rolled back after each sample). The two partial indexes 025 dropped because
//   only these queries used them are created again for it.
//
// Both sides' answers are checked equal first: every gauge of every schedule, every
// scheduled_jobs row and its recent runs, the runs and nodes listed, the late entries.
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import pg from "pg";
import { defineJob, startScheduler } from "../src/index.ts";
import { migrate } from "../src/scheduler.ts";
import { connectorOf } from "../src/engine/db/pool.ts";
import { projectRoot } from "../src/engine/db/sql-file.ts";
import { apiRoutes } from "../src/engine/http/api.ts";
import { createHttpPool } from "../src/engine/http/http-pool.ts";
import { createTestDatabase, testLogger } from "../test/helpers/db.ts";
import { migrateEngineBefore } from "../test/helpers/migrations.ts";
import { parsePrometheus, valueOf } from "../test/helpers/prometheus.ts";

const ENTRIES = (process.env.BENCH_SCRAPE_ENTRIES ?? process.argv[2] ?? "100,1000,5000").split(",").map(Number);
const RUNS = Number(process.env.BENCH_RUNS ?? 1_000_000);
const SAMPLES = Number(process.env.BENCH_SCRAPES ?? 11);
const QUEUED = Number(process.env.BENCH_QUEUED_JOBS ?? 10_000);
const NODE_ROWS = Number(process.env.BENCH_NODE_ROWS ?? 200);
const ZONES = ["UTC", "Europe/Berlin", "America/New_York"];
const TARGET_MS = 50;
if (!process.env.TEST_DATABASE_URL && process.env.DATABASE_URL) process.env.TEST_DATABASE_URL = process.env.DATABASE_URL;

const before = (name: string) => fs.readFileSync(path.join(projectRoot, "bench/fixtures/before-025", `${name}.sql`), "utf8").trim().replace(/;$/, "");
const OLD_VIEW = before("scheduled_jobs");
const OLD_GAUGES = before("cluster_gauges");
const OLD_NODES = before("list_nodes");
const OLD_SPARKLINES = before("sparklines");
const GAUGES = fs.readFileSync(path.join(projectRoot, "src/engine/http/cluster_gauges.sql"), "utf8");
const RUNS_SQL = fs.readFileSync(path.join(projectRoot, "src/engine/http/runs.sql"), "utf8");
const NODES_SQL = fs.readFileSync(path.join(projectRoot, "src/engine/cluster/list_nodes.sql"), "utf8");

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
}
/** Rows as JSON says them (dates as ISO text), for comparing what SQL and HTTP answered. */
const plain = (value: unknown) => JSON.parse(JSON.stringify(value)) as unknown;
function assertEqual(what: string, got: unknown[], want: unknown[]): void {
  const [a, b] = [got.map((row) => JSON.stringify(plain(row))), want.map((row) => JSON.stringify(plain(row)))];
  const at = a.findIndex((row, i) => row !== b[i]);
  if (a.length !== b.length || at >= 0) throw new Error(`${what}: new and baseline differ (${a.length} and ${b.length} rows)\n new:      ${a[at]?.slice(0, 1500)}\n baseline: ${b[at]?.slice(0, 1500)}`);
}

/** A GET on a connection of its own, as a scraper polling every few seconds has (a kept-alive one may be closed under it after 5 s). */
function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          if (response.statusCode === 200) resolve(body);
          else reject(new Error(`GET ${url}: ${response.statusCode} ${body.slice(0, 300)}`));
        });
        response.on("error", reject);
      })
      .on("error", reject);
  });
}

function crontabOf(entries: number): string {
  let seed = 7;
  const next = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
  return Array.from({ length: entries }, (_, i) => {
    const zone = ZONES[i % ZONES.length]!;
    return `${next(60)} ${next(24)} * * * bench_scrape ?id=${nameOf(i)}${zone === "UTC" ? "" : `&tz=${zone}`}`;
  }).join("\n");
}
const nameOf = (i: number) => `scrape_${String(i).padStart(5, "0")}`;

/** History over 30 days (~90% success, 8% failed, 2% skipped, 0.2% missed, 0.02% abandoned, 10% without a tick), 5% of entries 2 days behind; the queue; old nodes. */
async function seedBefore025(db: pg.Pool, entries: number): Promise<void> {
  await db.query(
    `insert into scheduler.job_runs (job_name, task, node_id, scheduled_for, started_at, finished_at, duration_ms, status)
     select 'scrape_' || lpad((g % $2)::text, 5, '0'), 'bench_scrape', 'bench-node', case when g % 10 <> 3 then t end,
            t + interval '1 second', t + interval '3 seconds', 2000,
            case when g % 500 = 7 then 'missed' when g % 5000 = 11 then 'abandoned' when g % 50 = 0 then 'skipped' when g % 12 = 0 then 'failed' else 'success' end
     from generate_series(1, $1) g,
          lateral (select now() - interval '30 days' + g * (interval '30 days' / $1) - case when (g % $2) % 20 = 1 then interval '2 days' else interval '0' end as t) x`,
    [RUNS, entries],
  );
  await db.query("select graphile_worker.add_job('bench_scrape', '{}'::json, run_at => now() + interval '1 day') from generate_series(1, $1)", [QUEUED]);
  await db.query(
    `insert into scheduler.nodes (node_id, host, pid, version, worker_pool_id, started_at, last_heartbeat_at, stopped_at)
     select 'old-' || g, 'host-' || (g % 10), g, 'bench', 'pool-' || g, now() - make_interval(hours => g), now() - make_interval(hours => g), now() - make_interval(hours => g) + interval '1 minute'
     from generate_series(1, $1) g`,
    [NODE_ROWS],
  );
}

interface Row {
  what: string;
  /** The GET over HTTP from the node (null: no endpoint of its own). */
  httpMs: number | null;
  newMs: number;
  baselineMs: number | null;
}

async function benchEntries(entries: number): Promise<{ rows: Row[]; notes: string[] }> {
  const db = await createTestDatabase({ migrate: false });
  const notes: string[] = [];
  try {
    await migrateEngineBefore(db.pool, 25, testLogger);
    const seeded = await timed(() => seedBefore025(db.pool, entries));
    await db.pool.query("vacuum analyze scheduler.job_runs");
    const migrated = await timed(() => migrate(db.pool, { logger: testLogger, platform: false }));
    notes.push(`seeded in ${(seeded.ms / 1000).toFixed(1)} s; sql/engine/025 applied in ${(migrated.ms / 1000).toFixed(1)} s (totals seeded from ${RUNS.toLocaleString("en")} rows, 3 indexes built)`);

    const job = defineJob({ name: "bench_scrape", description: "Never runs here", payload: {}, run: async () => ({ itemsProcessed: 0, itemsFailed: 0, message: "" }) });
    const node = await startScheduler({ pool: db.pool, jobs: [job], taskDirectory: null, crontab: crontabOf(entries), bootstrapJobs: [], logger: testLogger, http: "127.0.0.1:0", metricsCacheMs: 0, platform: false, historyRetentionDays: 3650 });
    try {
      // As if the crontab had been published long ago (its ticks count), and some entries paused.
      await db.pool.query("update scheduler.schedules set updated_at = now() - interval '40 days'");
      // Punctual entries ran their latest tick; the 5% whose history stops 2 days early did not (late).
      await db.pool.query(`
        insert into scheduler.job_runs (job_name, task, node_id, scheduled_for, started_at, finished_at, duration_ms, status)
        select s.job_name, s.task, 'bench-node', t.tick, t.tick + interval '1 second', t.tick + interval '3 seconds', 2000, 'success'
        from scheduler.schedules s cross join lateral (select scheduler.schedule_next(s, now() - interval '1 day') as tick) t
        where right(s.job_name, 2)::int % 20 <> 1 and t.tick < now()`);
      await db.pool.query("select scheduler.refresh_due_ticks(null)");
      await db.pool.query("select scheduler.pause_job(job_name, 'bench') from scheduler.schedules where right(job_name, 1) = '0'");
      // The indexes 025 dropped because only the old queries read them.
      await db.pool.query("create index job_runs_ticks_idx on scheduler.job_runs (job_name, scheduled_for desc) include (status) where scheduled_for is not null");
      await db.pool.query("create index job_runs_last_success_idx on scheduler.job_runs (job_name, finished_at desc) where status = 'success'");
      await db.pool.query("vacuum analyze scheduler.job_runs");
      const base = `http://${node.httpAddress}`;
      const get = (url: string) => httpGet(`${base}${url}`);
      const baseline = new pg.Client({ connectionString: db.connectionString });
      await baseline.connect();
      const reads = createHttpPool(connectorOf(db.pool)!, { logger: testLogger, applicationName: "bench-reads" });
      try {
        const cold = await timed(() => get("/api/schedules"));
        notes.push(`first GET /api/schedules after the start (every schedule's recent runs read and cached): ${cold.ms.toFixed(1)} ms`);
        const old = {
          metrics: () => baseline.query(OLD_GAUGES, [30_000, node.nodeId, 0]),
          schedules: async () => {
            const [view, sparklines] = [await baseline.query(`select * from (${OLD_VIEW}) v order by job_name`), await baseline.query(OLD_SPARKLINES)];
            const recent = new Map(sparklines.rows.map((row) => [row.job_name as string, row.runs as unknown[]]));
            return JSON.stringify(view.rows.map((row) => ({ ...row, recent_runs: recent.get(row.job_name as string) ?? [] })));
          },
          runs: async (status: string) => {
            await baseline.query("begin");
            await baseline.query("drop index scheduler.job_runs_status_started_idx, scheduler.job_runs_job_status_started_idx");
            try {
              return await timed(() => baseline.query(RUNS_SQL, [null, status, 50]));
            } finally {
              await baseline.query("rollback");
            }
          },
          nodes: () => baseline.query(OLD_NODES, [30_000, true]),
          late: () => baseline.query(`select job_name from (${OLD_VIEW}) v where late order by job_name`),
        };
        const lateNow = () => db.pool.query("select job_name from public.scheduled_jobs where late order by job_name");

        // Equal answers first.
        const samples = parsePrometheus(await get("/metrics"));
        const gauges = (await old.metrics()).rows[0].schedules as { job: string; paused: boolean; next_run: number | null; last_success: number | null; late: boolean; missed: number }[];
        for (const g of gauges) {
          const check = (metric: string, want: number | null) => {
            const got = valueOf(samples, metric, { job: g.job });
            if ((want === null && got !== undefined) || (want !== null && got !== Number(want))) throw new Error(`${metric}{job="${g.job}"}: /metrics says ${got}, the baseline ${want}`);
          };
          check("scheduler_schedule_paused", g.paused ? 1 : 0);
          check("scheduler_schedule_next_run_timestamp_seconds", g.next_run);
          check("scheduler_schedule_last_success_timestamp_seconds", g.last_success);
          check("scheduler_schedule_late", g.late ? 1 : 0);
          check("scheduler_schedule_missed_total", g.missed);
        }
        const served = JSON.parse(await get("/api/schedules")) as Record<string, unknown>[];
        const wanted = JSON.parse(await old.schedules()) as Record<string, unknown>[];
        assertEqual("/api/schedules", served.map(({ schedule_words: _w, dry_run_available: _d, ...row }) => row), wanted);
        for (const status of ["failed", "abandoned"]) assertEqual(`/api/runs?status=${status}`, JSON.parse(await get(`/api/runs?status=${status}`)) as unknown[], (await old.runs(status)).value.rows);
        const withoutClock = (rows: Record<string, unknown>[]) => rows.map(({ silent_ms: _s, ...row }) => row);
        assertEqual("/api/nodes?all=true", withoutClock(JSON.parse(await get("/api/nodes?all=true")) as Record<string, unknown>[]), withoutClock((await old.nodes()).rows));
        const late = (await lateNow()).rows;
        assertEqual("scheduled_jobs where late", late, (await old.late()).rows);
        notes.push(`checked equal: ${gauges.length} schedules' gauges, ${served.length} scheduled_jobs rows with their recent runs, runs, ${NODE_ROWS + 1} nodes, ${late.length} late entries`);

        // The same work in-process for both sides (the new side on a pool set up as the
        // endpoint's own: 2 s statement timeout, no JIT), and the new side's GET over HTTP.
        const api = apiRoutes({ db: reads, deadAfterMs: 30_000, canDryRun: () => true });
        const measures: { what: string; http: (() => Promise<unknown>) | null; now: () => Promise<unknown>; old: (() => Promise<number>) | null }[] = [
          { what: "/metrics (gauges recomputed)", http: () => get("/metrics"), now: () => reads.query(GAUGES, [0, 30_000, node.nodeId, 0]), old: async () => (await timed(old.metrics)).ms },
          { what: "  gauges, the cluster's figures fresh", http: null, now: () => reads.query(GAUGES, [60_000, 30_000, node.nodeId, 0]), old: null },
          { what: "/api/schedules", http: () => get("/api/schedules"), now: () => api.schedules!({ query: new URLSearchParams() }), old: async () => (await timed(old.schedules)).ms },
          { what: "/api/runs?status=failed", http: () => get("/api/runs?status=failed"), now: () => reads.query(RUNS_SQL, [null, "failed", 50]), old: async () => (await old.runs("failed")).ms },
          { what: "/api/runs?status=abandoned", http: () => get("/api/runs?status=abandoned"), now: () => reads.query(RUNS_SQL, [null, "abandoned", 50]), old: async () => (await old.runs("abandoned")).ms },
          { what: "/api/nodes?all=true", http: () => get("/api/nodes?all=true"), now: () => reads.query(NODES_SQL, [30_000, true]), old: async () => (await timed(old.nodes)).ms },
          { what: "scheduled_jobs where late", http: null, now: lateNow, old: async () => (await timed(old.late)).ms },
        ];
        const rows: Row[] = [];
        for (const measure of measures) {
          const httpTimes: number[] = [];
          const nowTimes: number[] = [];
          const oldTimes: number[] = [];
          for (let i = 0; i < SAMPLES; i++) {
            // Alternating which goes first, so neither always finds the other's cache warm.
            const sides = [async () => nowTimes.push((await timed(measure.now)).ms), async () => measure.old && oldTimes.push(await measure.old())];
            for (const side of i % 2 === 0 ? sides : sides.reverse()) await side();
            if (measure.http) httpTimes.push((await timed(measure.http)).ms);
          }
          rows.push({ what: measure.what, httpMs: measure.http ? median(httpTimes) : null, newMs: median(nowTimes), baselineMs: measure.old ? median(oldTimes) : null });
        }
        return { rows, notes };
      } finally {
        await baseline.end();
        await reads.end();
      }
    } finally {
      await node.stop();
    }
  } finally {
    await db.drop();
  }
}

/** GET /metrics with the node's default cache (5 s): what most real scrapes cost. */
async function cachedScrape(): Promise<number> {
  const db = await createTestDatabase({ migrate: true });
  try {
    const job = defineJob({ name: "bench_scrape", description: "Never runs here", payload: {}, run: async () => ({ itemsProcessed: 0, itemsFailed: 0, message: "" }) });
    const node = await startScheduler({ pool: db.pool, jobs: [job], taskDirectory: null, crontab: crontabOf(1000), bootstrapJobs: [], logger: testLogger, http: "127.0.0.1:0", platform: false });
    try {
      const url = `http://${node.httpAddress}/metrics`;
      await httpGet(url);
      const times: number[] = [];
      for (let i = 0; i < SAMPLES; i++) times.push((await timed(() => httpGet(url))).ms);
      return median(times);
    } finally {
      await node.stop();
    }
  } finally {
    await db.drop();
  }
}

let failed = false;
const probe = await createTestDatabase({ migrate: false });
const version = (await probe.pool.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]!.v;
await probe.drop();
for (const entries of ENTRIES) {
  const { rows, notes } = await benchEntries(entries);
  console.log(`bench:scrape — PostgreSQL ${version}, ${RUNS.toLocaleString("en")} history rows, ${entries.toLocaleString("en")} entries (${ZONES.length} zones, 10% paused), ${QUEUED.toLocaleString("en")} queued jobs, ${NODE_ROWS} old nodes; median of ${SAMPLES}`);
  for (const note of notes) console.log(`  ${note}`);
  console.log(`  ${"".padEnd(40)} ${"GET".padStart(10)} ${"new".padStart(10)} ${"baseline".padStart(10)} ${"ratio".padStart(7)}`);
  const ms = (value: number | null) => (value === null ? "" : `${value.toFixed(1)} ms`).padStart(10);
  for (const row of rows) {
    const ratio = row.baselineMs === null ? "" : `${(row.baselineMs / row.newMs).toFixed(1)}x`;
    console.log(`  ${row.what.padEnd(40)} ${ms(row.httpMs)} ${ms(row.newMs)} ${ms(row.baselineMs)} ${ratio.padStart(7)}`);
    const judged = row.httpMs ?? row.newMs;
    if (entries <= 1000 && judged >= TARGET_MS) {
      console.error(`FAIL: ${row.what.trim()} ${judged.toFixed(1)} ms at ${entries} entries is not under ${TARGET_MS} ms`);
      failed = true;
    }
  }
}
console.log(`GET /metrics with the default 5 s cache, 1,000 entries: ${(await cachedScrape()).toFixed(1)} ms median`);
console.log("(GET: over HTTP from the node; new and baseline: the same work in-process, the SQL and, for /api/schedules, the answer's assembly)");
console.log("(target: every GET, and the late query, under 50 ms up to 1,000 entries with 1M history rows; 5,000 entries are shown, not judged)");
process.exit(failed ? 1 : 0);
