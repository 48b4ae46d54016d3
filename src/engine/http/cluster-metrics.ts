import { Counter, Gauge, type Registry } from "prom-client";
import type { Queryable } from "../db/pool.ts";
import { readSql } from "../db/sql-file.ts";

// Cluster-wide gauges, read from the database: every node reports the same figures, so
// aggregate them with `max` (docs/observability.md), never `sum`. Read in one query at
// scrape time; the caller (metrics.ts) caches them for `cacheMs`, and the per-schedule
// figures and the queue are computed at most once per `cacheMs` for the whole cluster
// (cluster_gauges.sql: whichever node scrapes first recomputes them, the others read them).

const GAUGES = readSql(import.meta.url, "cluster_gauges.sql");

export interface MissedHere {
  job: string;
  task: string;
  n: number;
}

interface Snapshot {
  /** Empty only before the first computation, while another node is doing it. */
  cluster: {
    schedules?: { job: string; task: string; paused: boolean; next_run: number | null; last_success: number | null; late: boolean; missed: number }[];
    queue?: Record<string, number>;
  } | null;
  nodes: { alive: number; dead: number };
  missed_here: (MissedHere & { last_id: number })[];
}

export interface ClusterMetricsOptions {
  nodeId: string;
  deadAfterMs: number;
  /** How old the cluster's shared figures may be before this node recomputes them. */
  cacheMs: number;
  /** Told of the missed ticks this node's cron recorded since the last refresh. */
  missedHere(missed: MissedHere[]): void;
  /** Told of every schedule at each refresh (node-metrics.ts starts its run counters at 0). */
  scheduled(schedules: { job: string; task: string }[]): void;
}

/** Registers the engine's cluster gauges; the returned function refreshes them from the database. */
export function clusterMetrics(registry: Registry, db: Queryable, options: ClusterMetricsOptions): () => Promise<void> {
  const registers = [registry];
  const nextRun = new Gauge({ name: "scheduler_schedule_next_run_timestamp_seconds", help: "When the schedule fires next (Unix time; absent while paused) [cluster-wide: aggregate with max]", labelNames: ["schedule"] as const, registers });
  const lastSuccess = new Gauge({ name: "scheduler_schedule_last_success_timestamp_seconds", help: "When the schedule's last successful run finished (Unix time; absent before the first) [cluster-wide: aggregate with max]", labelNames: ["schedule"] as const, registers });
  const paused = new Gauge({ name: "scheduler_schedule_paused", help: "1 while the schedule (or its task) is paused, else 0 [cluster-wide: aggregate with max]", labelNames: ["schedule"] as const, registers });
  const nodes = new Gauge({ name: "scheduler_nodes", help: "Scheduler nodes not stopped, alive (heartbeat within SCHEDULER_NODE_DEAD_AFTER_MS) or dead [cluster-wide: aggregate with max]", labelNames: ["state"] as const, registers });
  const late = new Gauge({ name: "scheduler_schedule_late", help: "1 while a tick of the schedule has waited longer than its grace (?grace=, 60 s) plus jitter with no run started for it or a later tick, else 0 [cluster-wide: aggregate with max]", labelNames: ["schedule"] as const, registers });
  // A counter read from the database: each scrape sets it to the lifetime count (pruning
  // folds into job_stats, so it never goes down).
  let missedCounts: { job: string; missed: number }[] = [];
  new Counter({
    name: "scheduler_schedule_missed_total",
    help: "Ticks of the schedule that no node ran (all were down and fill= did not reach back), lifetime [cluster-wide: aggregate with max]",
    labelNames: ["schedule"] as const,
    registers,
    collect() {
      this.reset();
      for (const { job, missed } of missedCounts) this.inc({ schedule: job }, missed);
    },
  });
  const queue = new Gauge({ name: "scheduler_queue_jobs", help: "graphile-worker jobs: waiting, running, failed-for-good (no attempts left) [cluster-wide: aggregate with max]", labelNames: ["state"] as const, registers });

  let lastMissedId = 0;
  return async () => {
    const { rows } = await db.query<Snapshot>(GAUGES, [options.cacheMs, options.deadAfterMs, options.nodeId, lastMissedId]);
    const snapshot = rows[0]!;
    const schedules = snapshot.cluster?.schedules;
    if (schedules) {
      // Reset first: a schedule removed from the crontab must disappear from the output.
      for (const gauge of [nextRun, lastSuccess, paused, late]) gauge.reset();
      options.scheduled(schedules);
      missedCounts = schedules.map((schedule) => ({ job: schedule.job, missed: Number(schedule.missed) }));
      for (const schedule of schedules) {
        paused.set({ schedule: schedule.job }, schedule.paused ? 1 : 0);
        late.set({ schedule: schedule.job }, schedule.late ? 1 : 0);
        if (schedule.next_run !== null) nextRun.set({ schedule: schedule.job }, Number(schedule.next_run));
        if (schedule.last_success !== null) lastSuccess.set({ schedule: schedule.job }, Number(schedule.last_success));
      }
    }
    for (const [state, count] of Object.entries(snapshot.nodes)) nodes.set({ state }, Number(count));
    for (const [state, count] of Object.entries(snapshot.cluster?.queue ?? {})) queue.set({ state }, Number(count));
    if (snapshot.missed_here.length > 0) {
      lastMissedId = Math.max(lastMissedId, ...snapshot.missed_here.map((row) => Number(row.last_id)));
      options.missedHere(snapshot.missed_here.map(({ job, task, n }) => ({ job, task, n: Number(n) })));
    }
  };
}
