import type { Worker, WorkerEvents, WorkerPool } from "graphile-worker";

// One poll per node per interval, not one per worker. graphile-worker's workers each poll on
// their own when idle, each on a pooled connection, which kept an idle node's connections
// open. Here the workers' own poll interval is set far beyond the node's, and the node nudges
// one idle worker each interval instead (jittered, so nodes do not poll together). When that
// look finds a job, one more idle worker looks, and so on until one finds nothing: a backlog
// that no NOTIFY announced is still worked off by every worker, not one at a time.
//
// At start every worker looks once on its own; those first looks take turns (each waits for
// the one before it to finish), so a node coming up opens one pooled connection, not one per
// worker: thirty nodes started together do not need a burst of connections.

/** What the workers' own poll interval becomes: the node's poller does the polling. */
export const WORKER_POLL_FACTOR = 20;

export interface NodePoller {
  /** The graphile-worker plugin that makes the workers' first looks take turns. */
  plugin: GraphileConfig.Plugin;
  stop(): void;
}

export function pollForWorkers(options: { events: WorkerEvents; workerPool: () => WorkerPool | undefined; intervalMs: number }): NodePoller {
  const { events, workerPool, intervalMs } = options;
  let looking = false;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;

  // Each worker's first look waits for the previous worker's to end (found a job, found
  // none, or failed); `firstLooks` holds what ends the looks still under way.
  let previousFirstLook: Promise<void> = Promise.resolve();
  const firstLooks = new Map<Worker, () => void>();
  const firstLookEnded = ({ worker }: { worker: Worker }) => {
    firstLooks.get(worker)?.();
    firstLooks.delete(worker);
  };
  const plugin: GraphileConfig.Plugin = {
    name: "SystemPromptSchedulerFirstLookPlugin",
    version: "1",
    worker: {
      hooks: {
        startWorker(_ctx, { worker }) {
          if (shuttingDown) return;
          const turn = previousFirstLook;
          previousFirstLook = new Promise<void>((resolve) => firstLooks.set(worker, resolve));
          return turn;
        },
      },
    },
  };

  const onStart = (event: { worker: Worker }) => {
    firstLookEnded(event);
    if (looking) workerPool()?.nudge(1);
  };
  const onEmpty = (event: { worker: Worker }) => {
    firstLookEnded(event);
    looking = false;
  };
  events.on("job:start", onStart);
  events.on("worker:getJob:empty", onEmpty);
  events.on("worker:getJob:error", firstLookEnded);
  // A worker released before its first look never takes its turn: the next must not wait for it.
  events.on("worker:release", firstLookEnded);
  // Shutting down: no worker waits for a turn any more.
  let shuttingDown = false;
  const endAllTurns = () => {
    shuttingDown = true;
    for (const end of firstLooks.values()) end();
    firstLooks.clear();
  };
  events.on("pool:gracefulShutdown", endAllTurns);
  events.on("pool:forcefulShutdown", endAllTurns);

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
    plugin,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      endAllTurns();
      events.off("job:start", onStart);
      events.off("worker:getJob:empty", onEmpty);
      events.off("worker:getJob:error", firstLookEnded);
      events.off("worker:release", firstLookEnded);
      events.off("pool:gracefulShutdown", endAllTurns);
      events.off("pool:forcefulShutdown", endAllTurns);
    },
  };
}
