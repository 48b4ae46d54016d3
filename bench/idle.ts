// bench:idle — what an idle node costs the database: transactions per second counted by
// PostgreSQL itself (pg_stat_database.xact_commit + xact_rollback of the node's database),
// read from another database so the reading does not count. Idle: the platform's defaults
// (heartbeat, rescue pass, service reconciler, crontab and task folder watched) with an empty
// crontab and no bootstrap job, so no job is due. Measured for 1 and 10 real node processes
// (`node src/cli/main.ts start`), and, in the same run, for 1 and 10 bare graphile-worker
// runners (run() with one task, no crontab, its default 2 s poll) on the same server, each
// scenario in its own database, a bare one beside a node one. The count includes the server's
// own work for that database (autovacuum of the heartbeat rows). Also sampled every second of
// the window: the processes' connections to their database (pg_stat_activity), and at its end
// each process's resident memory (VmRSS).
//
//   node scripts/with-postgres.ts bench/idle.ts     (BENCH_IDLE_WINDOW_S=60 by default)
//
// BENCH_IDLE_COMPILED=1 runs the nodes from the compiled dist/ (`npm run build`), as an
// installed package does: no TypeScript compiled in the process, which is most of the memory
// difference between a checkout's `npm start` and an installed node.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Logger, run } from "graphile-worker";
import pg from "pg";
import { adminUrl, createTestDatabase, type TestDatabase } from "../test/helpers/db.ts";
import { NodeProcess } from "../test/engine/cluster/harness.ts";
import { loadEngineConfig } from "../src/engine/config.ts";

const WINDOW_S = Number(process.env.BENCH_IDLE_WINDOW_S ?? 60);
const COMPILED = process.env.BENCH_IDLE_COMPILED === "1";
const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const nodeCommand = COMPILED ? [process.execPath, path.join(projectRoot, "dist/src/cli/main.js"), "start"] : undefined;
// A node's first rescue pass, and with it the hourly pruning of old node records, comes once
// its connection has been up for the dead threshold (a node that just connected cannot tell a
// dead peer from a slow one). Ten nodes started together do it together: one-off start-up
// work that a window opening earlier counts as if it were the idle cost. A bare runner has no
// such step; it is measured after 20 s, by when its polling alone is left (4 workers, one
// poll each every 2 s: 2 transactions/s, what it prints).
const defaults = loadEngineConfig({});
const NODE_WARMUP_MS = defaults.SCHEDULER_NODE_DEAD_AFTER_MS + 1.25 * defaults.SCHEDULER_RESCUE_INTERVAL_MS + 2000;
const BARE_WARMUP_MS = 20_000;
const TARGET = 0.5;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Child mode: one bare graphile-worker runner, idle. */
async function bareWorker(connectionString: string): Promise<void> {
  const pool = new pg.Pool({ connectionString, max: 10 });
  pool.on("error", () => {});
  const runner = await run({ pgPool: pool, concurrency: 4, logger: new Logger(() => () => {}) }, { noop: async () => {} });
  console.log("ready");
  await runner.promise;
}

/** Transactions the server has counted for `database` so far. */
async function transactions(admin: pg.Client, database: string): Promise<number> {
  await admin.query("select pg_stat_clear_snapshot()");
  const { rows } = await admin.query<{ n: string }>("select xact_commit + xact_rollback as n from pg_stat_database where datname = $1", [database]);
  return Number(rows[0]!.n);
}

/**
 * The processes' connections to `database` right now: the admin connection is to another
 * database, and the bench's own pool for the database (named systemprompt-scheduler) is left out.
 */
async function connections(admin: pg.Client, database: string): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(
    "select count(*)::int as n from pg_stat_activity where datname = $1 and backend_type = 'client backend' and application_name is distinct from 'systemprompt-scheduler'",
    [database],
  );
  return rows[0]!.n;
}

/** Resident memory of a process, in MiB (Linux). */
function rssMiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
}

interface Idle {
  txPerS: number;
  /** Connections to the database, sampled every second of the window: mean and most. */
  meanConnections: number;
  maxConnections: number;
  /** Mean resident memory of the processes at the end of the window. */
  rssMiB: number;
}

async function measure(admin: pg.Client, database: string, warmupMs: number, pids: () => number[]): Promise<Idle> {
  await sleep(warmupMs);
  const before = await transactions(admin, database);
  const started = Date.now();
  const samples: number[] = [];
  while (Date.now() - started < WINDOW_S * 1000) {
    samples.push(await connections(admin, database));
    await sleep(1000);
  }
  const after = await transactions(admin, database);
  const memory = pids().map(rssMiB);
  return {
    txPerS: (after - before) / ((Date.now() - started) / 1000),
    meanConnections: samples.reduce((sum, n) => sum + n, 0) / samples.length,
    maxConnections: Math.max(...samples),
    rssMiB: memory.reduce((sum, n) => sum + n, 0) / memory.length,
  };
}

async function startBare(db: TestDatabase, count: number): Promise<ChildProcess[]> {
  const self = fileURLToPath(import.meta.url);
  return Promise.all(
    Array.from({ length: count }, () => new Promise<ChildProcess>((resolve, reject) => {
      const child = spawn(process.execPath, [self, "--bare-worker", db.connectionString], { stdio: ["ignore", "pipe", "inherit"] });
      child.stdout!.once("data", () => resolve(child));
      child.once("exit", (code) => reject(new Error(`bare worker exited ${code}`)));
    })),
  );
}

async function scenario(admin: pg.Client, label: string, count: number, warmupMs: number, start: (db: TestDatabase) => Promise<{ stop(): Promise<void>; pids(): number[] }>): Promise<Idle> {
  const db = await createTestDatabase();
  try {
    // The fresh database's first vacuum and analyze (autovacuum would run them during the
    // window) are not the processes' cost.
    await db.pool.query("vacuum analyze");
    const running = await start(db);
    try {
      const idle = await measure(admin, db.name, warmupMs, running.pids);
      console.log(
        `${label.padEnd(34)} ${count.toString().padStart(2)} × : ${idle.txPerS.toFixed(2).padStart(6)} tx/s in all, ${(idle.txPerS / count).toFixed(2)} tx/s per process; ` +
          `connections ${(idle.meanConnections / count).toFixed(2)} per process on average, ${idle.maxConnections} at most for all ${count}; RSS ${idle.rssMiB.toFixed(0)} MiB per process`,
      );
      return { ...idle, txPerS: idle.txPerS / count, meanConnections: idle.meanConnections / count };
    } finally {
      await running.stop();
    }
  } finally {
    await db.drop();
  }
}

async function main(): Promise<void> {
  const emptyCrontab = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sps-idle-")), "crontab");
  fs.writeFileSync(emptyCrontab, "");
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  if (COMPILED && !fs.existsSync(nodeCommand![1]!)) throw new Error("BENCH_IDLE_COMPILED=1 needs the compiled package: run `npm run build` first");
  console.log(`# bench:idle — transactions/s an idle process causes (pg_stat_database), ${COMPILED ? "nodes from dist/ (compiled)" : "nodes from src/ (TypeScript compiled by Node)"}, window ${WINDOW_S} s after a warm-up of ${NODE_WARMUP_MS / 1000} s (nodes) or ${BARE_WARMUP_MS / 1000} s (bare runners); ${os.availableParallelism()} cores`);
  const nodes = (db: TestDatabase, count: number) => async () => {
    const started = Array.from({ length: count }, (_, i) => new NodeProcess(`idle${i + 1}`, {
      DATABASE_URL: db.connectionString,
      SCHEDULER_HOST: `idle-${i + 1}`,
      SCHEDULER_CRONTAB: emptyCrontab,
      SCHEDULER_TASKS_DIR: "",
      SCHEDULER_BOOTSTRAP_JOBS: ",",
      // the defaults, not the test harness's fast cluster timings
      SCHEDULER_HEARTBEAT_MS: "",
      SCHEDULER_NODE_DEAD_AFTER_MS: "",
      SCHEDULER_RESCUE_INTERVAL_MS: "",
      SCHEDULER_CONCURRENCY: "",
    }, nodeCommand));
    for (const node of started) await node.started(120_000);
    return { stop: async () => void (await Promise.all(started.map((node) => node.stop()))), pids: () => started.map((node) => node.pid) };
  };
  const bare = (count: number) => async (db: TestDatabase) => {
    const children = await startBare(db, count);
    return {
      stop: async () => void (await Promise.all(children.map((child) => new Promise((resolve) => { child.once("exit", resolve); child.kill("SIGINT"); })))),
      pids: () => children.map((child) => child.pid!),
    };
  };
  // Each scenario counts its own database's transactions, so two can run at once: the bare
  // runners are measured while the nodes warm up. Paired big with small (1 node beside 10
  // bare runners, then 10 nodes beside 1), so the server never holds both tens' connections.
  const results: Record<string, Idle> = {};
  for (const [ours, theirs] of [[1, 10], [10, 1]] as const) {
    const [node, runner] = await Promise.all([
      scenario(admin, "systemprompt-scheduler node (idle)", ours, NODE_WARMUP_MS, (db) => nodes(db, ours)()),
      scenario(admin, "bare graphile-worker runner (idle)", theirs, BARE_WARMUP_MS, bare(theirs)),
    ]);
    results[`ours${ours}`] = node;
    results[`bare${theirs}`] = runner;
  }
  await admin.end();
  for (const count of [1, 10]) {
    const ours = results[`ours${count}`]!;
    const bare = results[`bare${count}`]!;
    console.log(`${count} node(s): ${ours.txPerS.toFixed(2)} tx/s per node vs bare graphile-worker ${bare.txPerS.toFixed(2)} (ratio ${(ours.txPerS / bare.txPerS).toFixed(2)}); target ≤ ${TARGET}: ${ours.txPerS <= TARGET ? "met" : "NOT met"}`);
    console.log(
      `${count} node(s): ${ours.meanConnections.toFixed(2)} connections per node on average (${ours.maxConnections} at most for ${count}) vs bare graphile-worker ${bare.meanConnections.toFixed(2)} (${bare.maxConnections} at most); ` +
        `target ≤ 2 per node: ${ours.maxConnections <= 2 * count ? "met" : "NOT met"}; RSS ${ours.rssMiB.toFixed(0)} MiB per node vs ${bare.rssMiB.toFixed(0)} MiB per bare runner`,
    );
  }
}

if (process.argv[2] === "--bare-worker") await bareWorker(process.argv[3]!);
else await main();
