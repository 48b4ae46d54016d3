import type { WorkerEvents, WorkerPool } from "graphile-worker";
import { jitterDelay } from "../crontab/jitter.ts";
import { delayCronJobs } from "../graphile/internals.ts";

// Holds back the ticks of `?jitter=` entries (parse.ts puts the entry's jitter in the job's
// payload as `_jitter_max_ms`): graphile-worker writes the job due at tick + delay. Idle
// workers poll rarely (SCHEDULER_POLL_INTERVAL_MS) and nothing announces that a job has
// become due, so the node wakes one of its workers then; every node does, whichever wrote it.
// The job is due by the database's clock (`now`: cluster/clock.ts), not this machine's.

export function holdJitteredTicks(events: WorkerEvents, workerPool: () => WorkerPool | undefined, now: () => number = Date.now): { stop(): void } {
  const timers = new Set<NodeJS.Timeout>();
  const hook = delayCronJobs(
    events,
    (identifier, job) => {
      const max = job.payload._jitter_max_ms;
      return typeof max === "number" ? jitterDelay(identifier, job.payload._cron.ts, max) : 0;
    },
    (dueAt) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        workerPool()?.nudge(1);
      }, Math.max(0, dueAt - now()) + 50);
      timer.unref();
      timers.add(timer);
    },
  );
  return {
    stop() {
      hook.stop();
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
