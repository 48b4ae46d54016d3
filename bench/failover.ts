// bench:failover — hard failovers of a real PostgreSQL 15 primary (pg_ctl stop -m immediate,
// its synchronous standby promoted) while two real scheduler nodes, with the default cluster
// settings (heartbeat 5 s, dead after 30 s, rescue every 5 s), work through effect jobs (each
// writes one row, so a job that never ran or ran twice shows). Per failover: jobs lost, jobs
// repeated against those in flight at the crash, resume (promotion asked for → first job done
// on the new primary) and drained (promotion → every job done). Each failover has a fresh
// cluster: a crashed primary cannot rejoin. Two ways for the nodes to find the new primary:
// (a) a multi-host URL with target_session_attrs=read-write, no pooler; (b) PgBouncer in
// session mode, re-pointed after the promotion. In the same run, the same work on bare
// graphile-worker 0.18 (concurrency 8, as two nodes × 4) behind the same kind of PgBouncer,
// given a timeout instead of being waited for; node-postgres cannot take a multi-host URL, so
// it has no variant (a): the error it gives is printed. Our trials must lose nothing and repeat
// at most what was in flight (or the 8 workers, see WORKERS), or the bench exits 1; the
// baseline's behaviour is only reported.
//
//   node scripts/with-postgres.ts bench/failover.ts   (BENCH_FAILOVERS=5, BENCH_FAILOVER_JOBS=1000 by default)
import { EventEmitter } from "node:events";
import { Logger, run, type WorkerEvents } from "graphile-worker";
import pg from "pg";
import { pgbouncerBinary } from "../test/helpers/pgbouncer.ts";
import { replicationBinaries, type ReplicatedCluster } from "../test/helpers/replication.ts";
import type { NodeProcess } from "../test/engine/cluster/harness.ts";
import {
  DATABASE, effectTally, failoverNode, firstEffectOn, hardFailover, lockedJobs, multiHostUrl, startFailoverCluster, startPgBouncer, type HardFailoverResult,
} from "../test/engine/cluster/failover-scenarios.ts";

const FAILOVERS = Number(process.env.BENCH_FAILOVERS ?? 5);
const BARE_FAILOVERS = Math.max(3, FAILOVERS);
const JOBS = Number(process.env.BENCH_FAILOVER_JOBS ?? 1000);
const CRASH_AFTER = Math.round(JOBS / 5);
const BARE_TIMEOUT_MS = 60_000;
// The in-flight count is read just before the crash, while workers still take jobs: a job can
// repeat only if it was locked at the crash, and no more than the two nodes' 8 workers can be.
const WORKERS = 8;
const DEFAULTS = { SCHEDULER_HEARTBEAT_MS: "5000", SCHEDULER_NODE_DEAD_AFTER_MS: "30000", SCHEDULER_RESCUE_INTERVAL_MS: "5000" };

type Variant = "multi-host" | "pgbouncer" | "bare";
interface Trial {
  jobs: number;
  lost: number;
  repeated: number;
  inFlight: number | null;
  resumeMs: number | null;
  drainedMs: number | null;
  /** Why the trial ended early, and for the baseline what its runner did. */
  note: string;
}

const seconds = (ms: number | null) => (ms === null ? "—" : `${(ms / 1000).toFixed(2)} s`);
const median = (sorted: number[]) => (sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2);

async function onPrimary<T>(cluster: ReplicatedCluster, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: cluster.primary.url(DATABASE) });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

/**
 * hardFailover, but a timeout becomes figures rather than an error: the baseline is expected to
 * stall. When the promotion was asked for is read by wrapping this cluster's promote, at the
 * instant hardFailover starts its own clock, so a stalled trial still gets a resume time.
 */
async function measured(cluster: ReplicatedCluster, prefix: string, options: { bouncer?: Awaited<ReturnType<typeof startPgBouncer>>; timeoutMs?: number }): Promise<Trial> {
  let promotedAt = 0;
  const promote = cluster.promote.bind(cluster);
  cluster.promote = (standby) => ((promotedAt = Date.now()), promote(standby));
  try {
    const result: HardFailoverResult = await hardFailover(cluster, { prefix, count: JOBS, crashAfter: CRASH_AFTER, ...options });
    return { ...result, note: "" };
  } catch (error) {
    if (!promotedAt) throw error;
    const tags = Array.from({ length: JOBS }, (_, i) => `${prefix}-${i}`);
    return onPrimary(cluster, async (client) => {
      const first = await firstEffectOn(client, cluster.primary, promotedAt);
      const tally = await effectTally(client, prefix, tags);
      const stuck = await lockedJobs(client);
      const what = first === null ? "did not resume" : "did not drain";
      return { jobs: JOBS, lost: tally.lost.length, repeated: tally.repeated.length, inFlight: null, resumeMs: first === null ? null : first - promotedAt, drainedMs: null, note: `${what} (${stuck} jobs still locked${/^timed out/.test((error as Error).message) ? "" : `; ${(error as Error).message}`})` };
    });
  }
}

async function ours(variant: "multi-host" | "pgbouncer", index: number): Promise<Trial> {
  const cluster = await startFailoverCluster({ synchronous: true });
  const bouncer = variant === "pgbouncer" ? await startPgBouncer("session", { target: { host: "127.0.0.1", port: cluster.primary.port } }) : undefined;
  const nodes: NodeProcess[] = [];
  try {
    const url = bouncer ? bouncer.urlFor(DATABASE) : multiHostUrl([cluster.primary, cluster.standbys[0]!]);
    for (const i of [1, 2]) nodes.push(failoverNode(`${variant}${index}-${i}`, url, DEFAULTS));
    await Promise.all(nodes.map((node) => node.started(60_000)));
    const trial = await measured(cluster, `${variant}${index}`, { bouncer });
    const exited = nodes.filter((node) => node.exitCode !== undefined).map((node) => `${node.name} exited ${node.exitCode}`);
    return { ...trial, note: [trial.note, ...exited].filter(Boolean).join("; ") };
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
    await bouncer?.stop();
    await cluster.stop();
  }
}

async function bare(index: number): Promise<Trial> {
  const cluster = await startFailoverCluster({ synchronous: true });
  const bouncer = await startPgBouncer("session", { target: { host: "127.0.0.1", port: cluster.primary.port } });
  const pool = new pg.Pool({ connectionString: bouncer.urlFor(DATABASE), max: 12 });
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  const errors: string[] = [];
  const logger = new Logger(() => (level, message) => void (level === "error" && errors.push(message.split("\n")[0]!.slice(0, 100))));
  const events = new EventEmitter() as WorkerEvents;
  let shutdown = "";
  events.on("pool:gracefulShutdown", ({ message }) => (shutdown ||= message));
  // A worker that dies is also console.trace'd by graphile-worker, stack and all; it is logged
  // (and counted here) as an error too.
  const trace = console.trace;
  console.trace = () => {};
  let settled = "";
  try {
    const runner = await run(
      { pgPool: pool, concurrency: WORKERS, noHandleSignals: true, logger, events, preset: { worker: { completeJobBatchDelay: 0, failJobBatchDelay: 0 } } },
      { effect: async (payload, helpers) => void (await helpers.query("insert into failover_effects (tag, node_id, port) values ($1, 'bare', current_setting('port')::int)", [(payload as { tag: string }).tag])) },
    );
    runner.promise.then(() => (settled = "runner stopped (resolved)"), (error: Error) => (settled = `runner stopped (rejected: ${error.message.split("\n")[0]})`));
    try {
      const trial = await measured(cluster, `bare${index}`, { bouncer, timeoutMs: BARE_TIMEOUT_MS });
      const exits = errors.filter((message) => message.startsWith("Worker exited with error")).length;
      const other = errors.find((message) => !message.startsWith("Worker exited with error"));
      const notes = [trial.note, `${exits} of ${WORKERS} workers exited with an error`, shutdown ? `pool shut itself down ("${shutdown}")` : "", settled || "runner still running", other ? `first other error: ${other}` : ""];
      return { ...trial, note: notes.filter(Boolean).join("; ") };
    } finally {
      if (!settled) await runner.stop().catch(() => {});
    }
  } finally {
    console.trace = trace;
    await pool.end().catch(() => {});
    await bouncer.stop();
    await cluster.stop();
  }
}

function line(variant: Variant, index: number, trial: Trial): string {
  const outcome = trial.inFlight === null ? `${trial.lost} not done within the timeout, repeated ${trial.repeated}` : `lost ${trial.lost}, repeated ${trial.repeated} (in flight at the crash: ${trial.inFlight})`;
  return `  ${variant.padEnd(10)} ${index}: ${outcome}; resume ${seconds(trial.resumeMs)}, drained ${seconds(trial.drainedMs)}${trial.note ? `; ${trial.note}` : ""}`;
}

function summarise(label: string, trials: Trial[]): { text: string; resumeMedian: number | null; allResumed: boolean } {
  const resumes = trials.map((trial) => trial.resumeMs).filter((ms): ms is number => ms !== null).sort((a, b) => a - b);
  const drains = trials.map((trial) => trial.drainedMs).filter((ms): ms is number => ms !== null).sort((a, b) => a - b);
  const range = (sorted: number[], what: string) => (sorted.length ? `${what} median ${seconds(median(sorted))} (${seconds(sorted[0]!)}–${seconds(sorted.at(-1)!)}, ${sorted.length}/${trials.length})` : `${what}: none of ${trials.length}`);
  const done = trials.filter((trial) => trial.inFlight !== null);
  const stalled = trials.filter((trial) => trial.inFlight === null);
  const total = (list: Trial[], pick: (trial: Trial) => number | null) => list.reduce((sum, trial) => sum + (pick(trial) ?? 0), 0);
  const text =
    `${label}: ${range(resumes, "resume")}; ${range(drains, "drained")}; ` +
    (done.length ? `lost ${total(done, (trial) => trial.lost)} of ${total(done, (trial) => trial.jobs)}, repeated ${total(done, (trial) => trial.repeated)} vs ${total(done, (trial) => trial.inFlight)} in flight` : "") +
    (stalled.length ? `${done.length ? "; " : ""}${stalled.length} stalled: ${total(stalled, (trial) => trial.lost)} of ${total(stalled, (trial) => trial.jobs)} jobs not done within the timeout, repeated ${total(stalled, (trial) => trial.repeated)}` : "");
  return { text, resumeMedian: resumes.length ? median(resumes) : null, allResumed: resumes.length === trials.length };
}

async function main(): Promise<void> {
  if (!replicationBinaries || !pgbouncerBinary) throw new Error("needs PostgreSQL 15 server binaries and pgbouncer: apt-get install postgresql-15 pgbouncer");
  const started = Date.now();
  // The fixture's version, and what node-postgres makes of a multi-host URL, on a cluster of its own.
  const probe = await startFailoverCluster({ synchronous: true });
  let version: string;
  let refusal: string;
  const listUrl = multiHostUrl([probe.primary, probe.standbys[0]!]);
  try {
    version = await onPrimary(probe, async (client) => (await client.query<{ version: string }>("select version()")).rows[0]!.version);
    const pool = new pg.Pool({ connectionString: listUrl });
    pool.on("error", () => {});
    try {
      (await pool.connect()).release();
      refusal = "connected (node-postgres took the multi-host URL)";
    } catch (error) {
      refusal = `${(error as NodeJS.ErrnoException).code ?? "error"}: ${(error as Error).message}`;
    } finally {
      await pool.end().catch(() => {});
    }
  } finally {
    await probe.stop();
  }
  console.log(
    `bench:failover — ${version}; synchronous standby; ${JOBS} effect jobs per failover, crash after ${CRASH_AFTER} done; ${FAILOVERS} failovers per variant of ours, ${BARE_FAILOVERS} of bare graphile-worker (timeout ${BARE_TIMEOUT_MS / 1000} s); ` +
      `nodes: 2 × concurrency 4, heartbeat ${DEFAULTS.SCHEDULER_HEARTBEAT_MS} ms, dead after ${DEFAULTS.SCHEDULER_NODE_DEAD_AFTER_MS} ms, rescue every ${DEFAULTS.SCHEDULER_RESCUE_INTERVAL_MS} ms`,
  );
  console.log(`  bare graphile-worker's pg on ${listUrl}: new pg.Pool({ connectionString }).connect() → ${refusal}`);

  const results: Record<Variant, Trial[]> = { "multi-host": [], pgbouncer: [], bare: [] };
  const failures: string[] = [];
  const plan: [Variant, number, (index: number) => Promise<Trial>][] = [
    ["multi-host", FAILOVERS, (i) => ours("multi-host", i)],
    ["pgbouncer", FAILOVERS, (i) => ours("pgbouncer", i)],
    ["bare", BARE_FAILOVERS, bare],
  ];
  for (const [variant, count, trialOf] of plan) {
    for (let i = 1; i <= count; i++) {
      try {
        const trial = await trialOf(i);
        results[variant].push(trial);
        console.log(line(variant, i, trial));
        if (variant !== "bare" && (trial.lost > 0 || trial.inFlight === null || trial.repeated > Math.max(trial.inFlight, WORKERS) || trial.note)) failures.push(line(variant, i, trial).trim());
      } catch (error) {
        console.log(`  ${variant.padEnd(10)} ${i}: FAILED: ${(error as Error).message.split("\n")[0]}`);
        if (variant !== "bare") failures.push(`${variant} ${i}: ${(error as Error).message}`);
      }
    }
  }

  const summaries = {
    "multi-host": summarise("ours, multi-host URL", results["multi-host"]),
    pgbouncer: summarise("ours, PgBouncer     ", results.pgbouncer),
    bare: summarise("bare graphile-worker, PgBouncer", results.bare),
  };
  const ratio = (() => {
    const { bare: theirs, pgbouncer: mine } = summaries;
    const stalled = BARE_FAILOVERS - results.bare.filter((trial) => trial.resumeMs !== null).length;
    if (stalled > 0) return `bare graphile-worker never resumed within ${BARE_TIMEOUT_MS / 1000} s in ${stalled} of ${BARE_FAILOVERS} failovers: no ratio`;
    if (mine.resumeMedian === null || theirs.resumeMedian === null) return "no ratio (no resume of ours measured)";
    return `median resume, bare graphile-worker / ours behind PgBouncer: ${(theirs.resumeMedian / Math.max(1, mine.resumeMedian)).toFixed(2)}`;
  })();
  console.log(`\nsummary (${version.split(",")[0]}; synchronous standby; ${JOBS} jobs per failover, crash after ${CRASH_AFTER}; default cluster settings; ${seconds(Date.now() - started)} in all):`);
  console.log(`  (a) ${summaries["multi-host"].text}`);
  console.log(`  (b) ${summaries.pgbouncer.text}`);
  console.log(`  baseline: ${summaries.bare.text}; multi-host URL: refused by node-postgres (${refusal})`);
  console.log(`  ${ratio}`);
  console.log(`  checked (ours: nothing lost, repeated ≤ in flight (read just before the crash) or the ${WORKERS} workers, no node exited): ${failures.length === 0 ? "ok" : `FAILED in ${failures.length} trial(s)`}`);
  for (const failure of failures) console.error(`  ${failure}`);
  if (failures.length > 0) process.exitCode = 1;
}

await main();
