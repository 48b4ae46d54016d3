import type { EventEmitter } from "node:events";
import type { WorkerEvents, WorkerPool } from "graphile-worker";
import type pg from "pg";
import type { Connector } from "../db/connector.ts";
import { sessionQueries, type NodeSession } from "../db/node-session.ts";
import { errorMessage, SchedulerError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { databaseClock, measureClock, type DatabaseClock } from "./clock.ts";
import { DatabaseHealth } from "./health.ts";
import { startHeartbeat, type Heartbeat } from "./heartbeat.ts";
import { announceJobs, jobsHeldBy, type FinishedJobs, type HeldQueue } from "../graphile/internals.ts";
import { recordWorkerPool, registerNode, releaseNode, type NodeRegistration } from "./nodes.ts";
import { watchLostLocks, type LostLockWatch } from "./lost-locks.ts";
import { makePoolPatient, type PatientPool } from "./patient-pool.ts";
import { startRescueLoop, type Rescue, type RescueLoop } from "./rescue.ts";

// A scheduler node's place in the cluster: registration, its heartbeat on a dedicated
// connection, the rescue loop, a pool that waits out database outages, and a clean release
// on shutdown. src/runner/start.ts wires this beside graphile-worker's runner.

/** Round trips measuring the clock at start (the median of them is the first estimate). */
const INITIAL_CLOCK_MEASUREMENTS = 3;

export interface ClusterSettings {
  heartbeatMs: number;
  deadAfterMs: number;
  rescueIntervalMs: number;
  /** How long the database may be unreachable before the node stops with an error. */
  giveUpMs: number;
  /** Retention of stopped/rescued node records, in days. */
  retentionDays?: number;
}

export interface ClusterNodeOptions extends ClusterSettings {
  pool: pg.Pool;
  /** Where the node's session (liveness lock, heartbeat, LISTEN) connects; the pool's clients come from it too. */
  connector: Connector;
  node: NodeRegistration;
  logger: Logger;
  /** Make the pool wait out outages (only for a pool this node created). */
  patientPool: boolean;
  /** Completions the patient pool answers itself (graphile/internals.ts). */
  finishedJobs?: FinishedJobs;
  /** The runner's job events (job:success / job:failed with runId), to close runs whose outcome was lost. */
  runEvents?: EventEmitter;
  onRescue?(rescue: Rescue): void;
  /** Each new estimate of this node's clock skew (ms, positive: ahead of the database's). */
  onClockSkew?(skewMs: number): void;
}

export interface ClusterNode {
  /** graphile-worker plugin: workers take no job before the pool id is recorded. */
  graphilePlugin: GraphileConfig.Plugin;
  /** Turns graphile-worker's fatal pool errors into `failure`; notes when its shutdown begins. */
  watchWorker(events: WorkerEvents): void;
  /** Rejects when the node must stop: database gone for good, or the worker pool failed. */
  failure: Promise<never>;
  health: DatabaseHealth;
  /** The database's clock, measured at start and by every heartbeat: the node's cron follows it. */
  clock: DatabaseClock;
  /** The node's own session: liveness lock, heartbeat, and every LISTEN (db/node-session.ts). */
  session: NodeSession;
  /** Releases the node (call once its worker has stopped) and stops heartbeat and rescue. */
  stop(): Promise<void>;
}

/** Refuses settings under which live nodes would be declared dead, with the fix. */
export function checkClusterSettings(settings: ClusterSettings): void {
  const problems: string[] = [];
  if (settings.deadAfterMs < 3 * settings.heartbeatMs) {
    problems.push(`SCHEDULER_NODE_DEAD_AFTER_MS (${settings.deadAfterMs}) must be at least 3 × SCHEDULER_HEARTBEAT_MS (${settings.heartbeatMs}), or a late beat gets a live node's jobs taken away`);
  }
  if (settings.rescueIntervalMs > settings.deadAfterMs) {
    problems.push(`SCHEDULER_RESCUE_INTERVAL_MS (${settings.rescueIntervalMs}) must not exceed SCHEDULER_NODE_DEAD_AFTER_MS (${settings.deadAfterMs})`);
  }
  if (settings.giveUpMs < settings.deadAfterMs) {
    problems.push(`SCHEDULER_DB_GIVE_UP_MS (${settings.giveUpMs}) must be at least SCHEDULER_NODE_DEAD_AFTER_MS (${settings.deadAfterMs})`);
  }
  if (problems.length > 0) {
    throw new SchedulerError("invalid_config", `invalid cluster timing:\n  ${problems.join("\n  ")}`, {
      hint: "defaults: heartbeat 5000, dead after 30000, rescue every 5000, give up after 300000 (ms)",
      exitCode: 2,
    });
  }
}

export async function startClusterNode(options: ClusterNodeOptions): Promise<ClusterNode> {
  checkClusterSettings(options);
  const { pool, node, logger } = options;
  let fail!: (error: SchedulerError) => void;
  const failure = new Promise<never>((_, reject) => (fail = reject));
  failure.catch(() => {});

  const health = new DatabaseHealth({
    connectionTarget: options.connector.target,
    logger,
    giveUpMs: options.giveUpMs,
    // A fresh node may rescue at once: it did not just live through an outage.
    startedHealthySince: Date.now() - options.deadAfterMs,
    onGiveUp: (error) => fail(error),
  });
  // The worker pool and its local queue (if configured), from graphile-worker's events.
  let workerPool: WorkerPool | null = null;
  let localQueue: HeldQueue | null = null;
  // Only a pool the node owns reports its failed connections; an application's pool gets no
  // lost-lock check (docs/cluster.md).
  const lostLocks: LostLockWatch | null = options.patientPool
    ? watchLostLocks({
        olderThanMs: options.deadAfterMs,
        workerPoolId: () => workerPool?.id ?? null,
        heldJobIds: () => jobsHeldBy(workerPool, localQueue),
        logger,
      })
    : null;
  let heartbeat: Heartbeat | undefined;
  let patience: PatientPool | null = null;
  if (options.patientPool) {
    patience = makePoolPatient(pool, health, { finished: options.finishedJobs, onConnectionLost: () => lostLocks?.suspect(), connector: options.connector, session: () => heartbeat?.session });
  }

  await registerNode(pool, node);
  // Measured before the node queues any tick: a few round trips on one connection.
  const clock = databaseClock({ logger, onSkew: options.onClockSkew });
  const client = await pool.connect();
  try {
    for (let i = 0; i < INITIAL_CLOCK_MEASUREMENTS; i++) await measureClock(client, clock);
  } finally {
    client.release();
  }
  // Assigned below; the heartbeat's first beat comes after a connect, never synchronously.
  let rescue: RescueLoop | null = null;
  heartbeat = startHeartbeat({
    connector: options.connector,
    node,
    intervalMs: options.heartbeatMs,
    health,
    logger,
    clock,
    onQuietNodes: () => rescue?.wake(),
    onNewPrimary() {
      logger.info("the database has a new primary (a failover): checking for jobs this node locked on the old one");
      lostLocks?.failover();
      rescue?.wake();
    },
  });
  const endedRuns = new Set<string>();
  const runEnded = ({ runId }: { runId?: string }) => {
    if (runId) endedRuns.add(runId);
  };
  options.runEvents?.on("job:success", runEnded);
  options.runEvents?.on("job:failed", runEnded);
  rescue = startRescueLoop({
    // Short statements, on the node's session: an idle node's passes need no pooled connection.
    db: sessionQueries(heartbeat.session),
    nodeId: node.nodeId,
    intervalMs: options.rescueIntervalMs,
    deadAfterMs: options.deadAfterMs,
    lockSilenceMs: options.heartbeatMs,
    retentionDays: options.retentionDays ?? 30,
    health,
    logger,
    endedRuns,
    onRescue: options.onRescue,
    lostLocks: lostLocks ?? undefined,
  });

  const recorded = new Map<string, Promise<void>>();
  let stopping = false;
  const recordPool = (poolId: string): Promise<void> => {
    let done = recorded.get(poolId);
    if (!done) {
      done = (async () => {
        for (let attempt = 0; !stopping && !health.stopping && !health.givenUp; attempt++) {
          try {
            await recordWorkerPool(pool, node.nodeId, poolId);
            logger.debug({ workerPoolId: poolId }, "worker pool recorded");
            return;
          } catch (error) {
            logger.warn({ error: errorMessage(error), workerPoolId: poolId }, "could not record the worker pool id yet; workers wait for it");
            await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 200 * 2 ** attempt)));
          }
        }
      })();
      recorded.set(poolId, done);
    }
    return done;
  };

  const graphilePlugin: GraphileConfig.Plugin = {
    name: "SystemPromptSchedulerClusterPlugin",
    version: node.version,
    worker: {
      hooks: {
        // Until the pool id is in scheduler.nodes, a job this node locked could not be
        // rescued if it died; so no worker takes a job before that.
        startWorker(_ctx, event) {
          return recordPool(event.worker.workerPool.id);
        },
      },
    },
  };

  const session = heartbeat.session;
  return {
    graphilePlugin,
    health,
    clock,
    session,
    failure,
    watchWorker(events) {
      events.on("pool:create", ({ workerPool: created }) => (workerPool = created));
      events.on("localQueue:init", ({ localQueue: created }) => (localQueue = created));
      // graphile-worker re-sends get_job after some network errors (withRetries): the job the
      // lost attempt locked is then held by nobody.
      events.on("worker:getJob:error", () => lostLocks?.suspect());
      // The pool connect that follows at once (same tick) is the listener's: it gets the session.
      events.on("pool:listen:connecting", () => patience?.lendNextConnect());
      // From here on a database outage must not hold the shutdown up to the give-up time.
      events.on("pool:gracefulShutdown", () => (health.stopping = true));
      events.on("pool:fatalError", ({ error, action }) => {
        if (health.stopping) {
          // Shutting down anyway; what the failed statement left locked is released by stop().
          logger.warn({ error: errorMessage(error), action }, "graphile-worker could not record a job's outcome during shutdown");
          return;
        }
        fail(
          new SchedulerError("worker_failed", `graphile-worker stopped this node's worker pool: '${action}' failed (${errorMessage(error)})`, {
            hint: "the node exits non-zero so that a supervisor restarts it; jobs it held are released by its shutdown or by a live node's rescue",
          }),
        );
      });
    },
    async stop() {
      stopping = true;
      await rescue?.stop();
      options.runEvents?.off("job:success", runEnded);
      options.runEvents?.off("job:failed", runEnded);
      try {
        const released = await releaseNode(pool, node.nodeId);
        if (released.jobsReleased.length > 0 || released.runsAbandoned.length > 0) {
          logger.warn(released, "released jobs this node still held at shutdown");
        }
        // Other nodes' idle workers poll rarely: tell them the released jobs are there.
        if (released.jobsReleased.length > 0) await announceJobs(pool, released.jobsReleased.length);
      } catch (error) {
        logger.warn({ error: errorMessage(error) }, `could not deregister the node; live nodes will release its jobs once it has been silent for ${options.deadAfterMs} ms`);
      }
      await heartbeat?.stop();
    },
  };
}
