import type { Queryable } from "../db/pool.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { DatabaseHealth } from "./health.ts";
import type { LostLockWatch } from "./lost-locks.ts";

// Rescue: a live node periodically declares dead the nodes silent for longer than the
// threshold and frees what they held (scheduler.rescue_dead_nodes in sql/006_cluster.sql).

export interface Rescue {
  id: string;
  node_id: string;
  host: string;
  worker_pool_id: string | null;
  rescued_by: string;
  rescued_at: Date;
  last_heartbeat_at: Date;
  jobs_released: string[];
  runs_abandoned: string[];
  sessions_ended: number;
}

const RESCUE = "select * from scheduler.rescue_dead_nodes($1, make_interval(secs => $2::float8 / 1000), make_interval(secs => $3::float8 / 1000))";
const PRUNE = "select scheduler.prune_nodes(make_interval(days => $1), $2) as removed";
const CLOSE_LOST_RUNS = "select scheduler.close_lost_runs($1, $2::bigint[]) as id";

/**
 * One rescue pass: declares dead the nodes silent for longer than `deadAfterMs`, and those
 * silent for longer than `lockSilenceMs` whose process is gone (no session left, liveness lock
 * free); frees what they held.
 */
export async function rescueDeadNodes(db: Queryable, rescuerId: string, deadAfterMs: number, lockSilenceMs: number): Promise<Rescue[]> {
  const { rows } = await db.query<Rescue>(RESCUE, [rescuerId, deadAfterMs, lockSilenceMs]);
  return rows;
}

/** Closes this node's history rows still marked running although their run ended; returns their ids. */
export async function closeLostRuns(db: Queryable, nodeId: string, endedRunIds: string[]): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(CLOSE_LOST_RUNS, [nodeId, endedRunIds]);
  return rows.map((row) => row.id);
}

/** Deletes nodes that stopped (or were rescued) more than `days` ago, and old rescues. */
export async function pruneNodes(db: Queryable, days: number, batchSize = 1000): Promise<number> {
  let total = 0;
  for (;;) {
    const { rows } = await db.query<{ removed: number }>(PRUNE, [days, batchSize]);
    const removed = rows[0]?.removed ?? 0;
    total += removed;
    if (removed < batchSize) return total;
  }
}

export interface RescueLoop {
  /** The heartbeat saw a node that missed a beat: pass now (or right after the pass in flight). */
  wake(): void;
  stop(): Promise<void>;
}

/**
 * Passes when there is something to do, checked every `intervalMs` (with jitter, so nodes do
 * not all scan at once): another node missed a beat (the heartbeat says so: wake()), runs
 * ended since the last pass, a lost-lock check is due (after a failed connection: `lostLocks`),
 * the hourly pruning is due, or `safetyMs` passed without a pass.
 * An idle cluster thus costs no rescue query but one per `safetyMs`. Only while this node's
 * own connection has been up for at least `deadAfterMs`: a node that just reconnected cannot
 * tell a dead peer from one that is still reconnecting after the same outage.
 */
export function startRescueLoop(options: {
  db: Queryable;
  nodeId: string;
  intervalMs: number;
  deadAfterMs: number;
  /** A node whose process is gone is declared dead once silent this long (one heartbeat). */
  lockSilenceMs: number;
  retentionDays: number;
  health: DatabaseHealth;
  logger: Logger;
  /** Ids of runs the job wrapper reported ended since the last pass (for closeLostRuns); emptied once checked. */
  endedRuns: Set<string>;
  onRescue?(rescue: Rescue): void;
  /** The longest time without a pass (default twice `deadAfterMs`). */
  safetyMs?: number;
  /** Jobs this node locked but never ran, checked only after one of its connections failed (lost-locks.ts). */
  lostLocks?: LostLockWatch;
}): RescueLoop {
  const { db, nodeId, intervalMs, deadAfterMs, health, logger } = options;
  const safetyMs = options.safetyMs ?? 2 * deadAfterMs;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let passing = false;
  let wanted = false;
  let inFlight: Promise<void> = Promise.resolve();
  let lastPass = 0;
  let lastPrune = 0;
  let lastProblem: string | null = null;

  const due = () => wanted || options.endedRuns.size > 0 || options.lostLocks?.due() === true || Date.now() - lastPass >= safetyMs || Date.now() - lastPrune > 3_600_000;

  async function pass(): Promise<void> {
    wanted = false;
    lastPass = Date.now();
    try {
      const ended = [...options.endedRuns];
      const lost = ended.length > 0 ? await closeLostRuns(db, nodeId, ended) : [];
      for (const id of ended) options.endedRuns.delete(id);
      if (lost.length > 0) logger.warn({ runs: lost }, "closed history rows whose outcome could not be recorded (connection lost) as abandoned");
      // Before the wait below: these are this node's own jobs, not a peer's it might misjudge.
      if (options.lostLocks?.due()) await options.lostLocks.check(db);
      if (health.connectedForMs() < deadAfterMs) return;
      const rescues = await rescueDeadNodes(db, nodeId, deadAfterMs, options.lockSilenceMs);
      for (const rescue of rescues) {
        logger.warn(
          {
            deadNode: rescue.node_id,
            host: rescue.host,
            lastHeartbeatAt: rescue.last_heartbeat_at,
            jobsReleased: rescue.jobs_released,
            runsAbandoned: rescue.runs_abandoned,
            sessionsEnded: rescue.sessions_ended,
          },
          `rescued dead node ${rescue.node_id}: released ${rescue.jobs_released.length} job(s), abandoned ${rescue.runs_abandoned.length} run(s)`,
        );
        options.onRescue?.(rescue);
      }
      if (Date.now() - lastPrune > 3_600_000) {
        lastPrune = Date.now();
        const removed = await pruneNodes(db, options.retentionDays);
        if (removed > 0) logger.info({ removed }, "pruned old node and rescue records");
      }
      lastProblem = null;
    } catch (error) {
      const message = errorMessage(error);
      if (message !== lastProblem) logger.warn({ error: message }, "rescue pass failed; will retry");
      lastProblem = message;
    }
  }

  const schedule = (delay: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = null;
      passing = true;
      inFlight = (due() ? pass() : Promise.resolve()).finally(() => {
        passing = false;
        schedule(wanted ? 0 : intervalMs * (0.75 + Math.random() / 2));
      });
    }, delay);
    timer.unref();
  };
  schedule(Math.random() * Math.min(intervalMs, 1000));

  return {
    wake() {
      wanted = true;
      if (stopped || passing || !timer) return; // the pass in flight reschedules at once
      clearTimeout(timer);
      timer = null;
      schedule(0);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await inFlight;
    },
  };
}
