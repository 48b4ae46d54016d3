import type { WorkerEvents, WorkerPool } from "graphile-worker";

// One poll per node per interval, not one per worker. graphile-worker's workers each poll on
// their own when idle, each on a pooled connection, which kept an idle node's connections
// open. Here the workers' own poll interval is set far beyond the node's, and the node nudges
// one idle worker each interval instead (jittered, so nodes do not poll together). When that
// look finds a job, one more idle worker looks, and so on until one finds nothing: a backlog
// that no NOTIFY announced is still worked off by every worker, not one at a time.

/** What the workers' own poll interval becomes: the node's poller does the polling. */
export const WORKER_POLL_FACTOR = 20;

export interface NodePoller {
  stop(): void;
}

export function pollForWorkers(options: { events: WorkerEvents; workerPool: () => WorkerPool | undefined; intervalMs: number }): NodePoller {
  const { events, workerPool, intervalMs } = options;
  let looking = false;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;

  const onStart = () => {
    if (looking) workerPool()?.nudge(1);
  };
  const onEmpty = () => {
    looking = false;
  };
  events.on("job:start", onStart);
  events.on("worker:getJob:empty", onEmpty);

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = null;
      const pool = workerPool();
      if (pool && !pool._shuttingDown) {
        // Busy workers look for their next job anyway; an idle one looks now.
        looking = true;
        pool.nudge(1);
      }
      schedule();
    }, intervalMs * (0.9 + Math.random() * 0.2));
    timer.unref();
  };
  schedule();

  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      events.off("job:start", onStart);
      events.off("worker:getJob:empty", onEmpty);
    },
  };
}
