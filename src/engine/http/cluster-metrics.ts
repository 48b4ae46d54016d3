import type { Queryable } from "../db/pool.ts";
import { readSql } from "../db/sql-file.ts";
import { renderFamily } from "./exposition.ts";

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

/** A schedule's figures as cluster_gauges.sql lists them. */
type ScheduleRow = [job: string, task: string, paused: boolean, nextRun: number | null, lastSuccess: number | null, late: boolean, missed: number | string];

interface Snapshot {
  /** Empty only before the first computation, while another node is doing it. */
  cluster: { schedules?: ScheduleRow[]; queue?: Record<string, number> } | null;
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

interface ScheduleGauges {
  job: string;
  task: string;
  paused: boolean;
  next_run: number | null;
  last_success: number | null;
  late: boolean;
  missed: number;
}
const CLUSTER = "[cluster-wide: aggregate with max]";

export interface ClusterMetrics {
  /** Reads the figures from the database (the cluster's cached copy unless it is stale). */
  refresh(): Promise<void>;
  /** The families in the Prometheus text format, from the last refresh. */
  text(): string;
}

/** The engine's cluster gauges: refreshed from the database, rendered as text once per refresh. */
export function clusterMetrics(db: Queryable, options: ClusterMetricsOptions): ClusterMetrics {
  let schedules: ScheduleGauges[] = [];
  let nodes: Record<string, number> = {};
  let queue: Record<string, number> = {};
  let lastMissedId = 0;
  const perJob = (pick: (schedule: ScheduleGauges) => number | null) =>
    schedules.flatMap((schedule): [Record<string, string>, number][] => {
      const value = pick(schedule);
      return value === null ? [] : [[{ schedule: schedule.job }, value]];
    });
  const byState = (counts: Record<string, number>) => Object.entries(counts).map(([state, count]): [Record<string, string>, number] => [{ state }, Number(count)]);
  return {
    async refresh() {
      const { rows } = await db.query<Snapshot>(GAUGES, [options.cacheMs, options.deadAfterMs, options.nodeId, lastMissedId]);
      const snapshot = rows[0]!;
      // The whole list each time: a schedule removed from the crontab disappears from the output.
      if (snapshot.cluster?.schedules) {
        schedules = snapshot.cluster.schedules.map(([job, task, paused, nextRun, lastSuccess, late, missed]) => ({ job, task, paused, next_run: nextRun, last_success: lastSuccess, late, missed: Number(missed) }));
        options.scheduled(schedules);
      }
      if (snapshot.cluster?.queue) queue = snapshot.cluster.queue;
      nodes = snapshot.nodes;
      if (snapshot.missed_here.length > 0) {
        lastMissedId = Math.max(lastMissedId, ...snapshot.missed_here.map((row) => Number(row.last_id)));
        options.missedHere(snapshot.missed_here.map(({ job, task, n }) => ({ job, task, n: Number(n) })));
      }
    },
    text: () =>
      [
        renderFamily("scheduler_schedule_next_run_timestamp_seconds", `When the schedule fires next (Unix time; absent while paused) ${CLUSTER}`, "gauge", perJob((s) => (s.next_run === null ? null : Number(s.next_run)))),
        renderFamily("scheduler_schedule_last_success_timestamp_seconds", `When the schedule's last successful run finished (Unix time; absent before the first) ${CLUSTER}`, "gauge", perJob((s) => (s.last_success === null ? null : Number(s.last_success)))),
        renderFamily("scheduler_schedule_paused", `1 while the schedule (or its task) is paused, else 0 ${CLUSTER}`, "gauge", perJob((s) => (s.paused ? 1 : 0))),
        renderFamily("scheduler_nodes", `Scheduler nodes not stopped, alive (heartbeat within SCHEDULER_NODE_DEAD_AFTER_MS) or dead ${CLUSTER}`, "gauge", byState(nodes)),
        renderFamily("scheduler_schedule_late", `1 while a tick of the schedule has waited longer than its grace (?grace=, 60 s) plus jitter with no run started for it or a later tick, else 0 ${CLUSTER}`, "gauge", perJob((s) => (s.late ? 1 : 0))),
        // A counter read from the database: the lifetime count (job_stats keeps it through pruning, so it never goes down).
        renderFamily("scheduler_schedule_missed_total", `Ticks of the schedule that no node ran (all were down and fill= did not reach back), lifetime ${CLUSTER}`, "counter", perJob((s) => s.missed)),
        renderFamily("scheduler_queue_jobs", `graphile-worker jobs: waiting, running, failed-for-good (no attempts left) ${CLUSTER}`, "gauge", byState(queue)),
      ].join("\n"),
  };
}
