import type { EventEmitter } from "node:events";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { Queryable } from "../db/pool.ts";
import type { Rescue } from "../cluster/rescue.ts";
import type { MissedHere } from "./cluster-metrics.ts";

// Node-local metrics: what this node did, fed from its job events. Each node counts only
// its own runs, so summing over nodes (`sum by (schedule, status)`) never counts a run twice.

const DURATION_BUCKETS = [0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600];
const LATENESS_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900];
/** Tick precision: 5 ms to 5 minutes. */
const START_DELAY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

interface RunEvent {
  jobName: string;
  task: string;
  durationMs?: number;
  scheduledFor?: Date | null;
  startedAt?: string | null;
  jitterMs?: number | null;
}

export interface NodeMetrics {
  /** This node rescued a dead node: counts the rescue and the runs it marked abandoned. */
  rescued(rescue: Rescue): Promise<void>;
  /** Ticks this node's cron found nobody had queued, recorded as missed (sql/engine/021). */
  missedRecorded(missed: MissedHere[]): void;
  /** The schedules in the database: their success and failed counters start at 0. */
  scheduled(schedules: { job: string; task: string }[]): void;
  /** This node's clock skew as its heartbeat last measured it (cluster/clock.ts). */
  clockSkew(skewMs: number): void;
  stop(): void;
}

export function nodeMetrics(registry: Registry, events: EventEmitter, db: Queryable): NodeMetrics {
  const runs = new Counter({
    name: "scheduler_job_runs_total",
    help: "Runs this node finished, by outcome (skipped: a paused job's run or an overlap=skip tick; abandoned: runs of nodes this node rescued; missed: ticks nobody ran, recorded when this node's cron resumed)",
    labelNames: ["schedule", "task", "status"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "scheduler_job_run_duration_seconds",
    help: "How long this node's runs took, successful or failed",
    labelNames: ["schedule", "task"] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const lateness = new Histogram({
    name: "scheduler_job_lateness_seconds",
    help: "Start of a scheduled run minus the tick it was scheduled for (jitter included), on this node",
    labelNames: ["schedule"] as const,
    buckets: LATENESS_BUCKETS,
    registers: [registry],
  });
  const startDelay = new Histogram({
    name: "scheduler_job_start_delay_seconds",
    help: "A scheduled run's start minus its tick, without the delay ?jitter= gave it (the scheduler's own precision), on this node",
    labelNames: ["schedule"] as const,
    buckets: START_DELAY_BUCKETS,
    registers: [registry],
  });
  const stuck = new Gauge({
    name: "scheduler_job_runs_stuck",
    help: "Runs on this node past their timeout whose function has not returned: each holds a worker and its task's lock (recorded failed at the deadline)",
    labelNames: ["schedule", "task"] as const,
    registers: [registry],
  });
  const crontabRejected = new Gauge({
    name: "scheduler_crontab_rejected",
    help: "1 while this node's crontab file holds an edit it rejected (the previous schedule stays in force), else 0",
    registers: [registry],
  });
  const crontabReloads = new Counter({
    name: "scheduler_crontab_reloads_total",
    help: "Live edits of this node's crontab file, by result: applied, or rejected (the previous schedule stays in force)",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  // Both results exist at 0 from the start, so increase() sees the first one.
  crontabReloads.inc({ result: "applied" }, 0);
  crontabReloads.inc({ result: "rejected" }, 0);
  crontabRejected.set(0);
  const rescues = new Counter({
    name: "scheduler_rescues_total",
    help: "Dead nodes this node declared dead and rescued",
    registers: [registry],
  });
  const skew = new Gauge({
    name: "scheduler_node_clock_skew_seconds",
    help: "This node's clock minus the database's (positive: ahead), measured by its heartbeat; its cron ticks follow the database's clock",
    registers: [registry],
  });

  // The schedules whose success and failed series exist already (told at every refresh).
  const started = new Set<string>();

  const onStart = (event: RunEvent) => {
    if (!event.scheduledFor || !event.startedAt) return;
    const late = (Date.parse(event.startedAt) - event.scheduledFor.getTime()) / 1000;
    if (!Number.isFinite(late)) return;
    lateness.observe({ schedule: event.jobName }, Math.max(0, late));
    startDelay.observe({ schedule: event.jobName }, Math.max(0, late - (event.jitterMs ?? 0) / 1000));
  };
  const finished = (status: string) => (event: RunEvent) => {
    runs.inc({ schedule: event.jobName, task: event.task, status });
    if (event.durationMs !== undefined) duration.observe({ schedule: event.jobName, task: event.task }, event.durationMs / 1000);
  };
  const onSuccess = finished("success");
  const onFailed = finished("failed");
  const onSkipped = finished("skipped");
  events.on("job:start", onStart);
  events.on("job:success", onSuccess);
  events.on("job:failed", onFailed);
  events.on("job:skipped", onSkipped);
  const onStuck = (event: RunEvent) => stuck.inc({ schedule: event.jobName, task: event.task });
  const onUnstuck = (event: RunEvent) => stuck.dec({ schedule: event.jobName, task: event.task });
  const onReloaded = () => crontabReloads.inc({ result: "applied" });
  const onRejected = () => {
    crontabReloads.inc({ result: "rejected" });
    crontabRejected.set(1);
  };
  const onRepaired = () => crontabRejected.set(0);
  events.on("crontab:reloaded", onReloaded);
  events.on("crontab:rejected", onRejected);
  events.on("crontab:repaired", onRepaired);
  events.on("job:stuck", onStuck);
  events.on("job:unstuck", onUnstuck);

  return {
    async rescued(rescue) {
      rescues.inc();
      if (rescue.runs_abandoned.length === 0) return;
      const { rows } = await db.query<{ job_name: string; task: string; n: number }>(
        "select job_name, task, count(*)::int as n from scheduler.job_runs where id = any($1::bigint[]) group by 1, 2",
        [rescue.runs_abandoned],
      );
      for (const row of rows) runs.inc({ schedule: row.job_name, task: row.task, status: "abandoned" }, row.n);
    },
    missedRecorded(missed) {
      for (const { job, task, n } of missed) runs.inc({ schedule: job, task, status: "missed" }, n);
    },
    // A counter series that first appears at 1 (or 3, after three quick attempts) shows no
    // increase() in Prometheus: the first scrape is its baseline. Starting each schedule's
    // success and failed series at 0 lets the alert rules (ops/prometheus) see its first failures.
    scheduled(schedules) {
      for (const { job, task } of schedules) {
        const key = `${job}\u0000${task}`;
        if (started.has(key)) continue;
        started.add(key);
        for (const status of ["success", "failed"]) runs.inc({ schedule: job, task, status }, 0);
      }
    },
    clockSkew(skewMs) {
      skew.set(skewMs / 1000);
    },
    stop() {
      events.off("job:start", onStart);
      events.off("job:success", onSuccess);
      events.off("job:failed", onFailed);
      events.off("job:skipped", onSkipped);
      events.off("crontab:reloaded", onReloaded);
      events.off("crontab:rejected", onRejected);
      events.off("crontab:repaired", onRepaired);
      events.off("job:stuck", onStuck);
      events.off("job:unstuck", onUnstuck);
    },
  };
}
