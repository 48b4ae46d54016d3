import type { Queryable } from "../db/pool.ts";
import { announceJobs } from "../graphile/internals.ts";
import type { Logger } from "../log.ts";

// Jobs this live node locked but never ran (scheduler.release_lost_jobs, sql/engine/023): a
// get_job whose reply was lost with its connection, or one graphile-worker re-sent after a
// network error, leaves a job locked by this node's worker pool that no worker runs. Rescue
// frees only dead nodes' jobs, so without this it would wait for graphile-worker's 4-hour
// stale-lock sweep. Such a lock can only be lost with a connection, so the check runs only
// after one of the pool's connections failed (patient-pool.ts, graphile-worker's
// worker:getJob:error): while connections are fine it costs nothing.

const RELEASE_LOST_JOBS = "select released, suspects from scheduler.release_lost_jobs($1, $2::bigint[], make_interval(secs => $3::float8 / 1000))";

/** After a new primary is noticed, how long before the node checks for locks lost with the old one. */
const FAILOVER_SETTLE_MS = 2000;

export interface LostJobs {
  released: string[];
  /** Jobs still locked by the pool that no worker holds (young locks, runs finishing). */
  suspects: number;
}

/** Unlocks the jobs `workerPoolId` locked more than `olderThanMs` ago and never began (see sql/engine/023). */
export async function releaseLostJobs(db: Queryable, workerPoolId: string, heldJobIds: string[], olderThanMs: number): Promise<LostJobs> {
  const { rows } = await db.query<{ released: string[]; suspects: number }>(RELEASE_LOST_JOBS, [workerPoolId, heldJobIds, olderThanMs]);
  return { released: rows[0]?.released ?? [], suspects: rows[0]?.suspects ?? 0 };
}

export interface LostLockWatch {
  /** One of the pool's connections failed: a lock taken before now may have been lost. */
  suspect(): void;
  /** The database has a new primary: locks taken on the old one are lost if no worker holds them (sql/024), check soon. */
  failover(): void;
  /** A check is wanted: suspected, and every lock lost before the suspicion is old enough to be told from one in flight. */
  due(): boolean;
  /** Releases this node's lost jobs; the suspicion stays while jobs no worker holds remain locked. */
  check(db: Queryable): Promise<void>;
}

export function watchLostLocks(options: {
  /** A lock younger than this is never released: its get_job may still be on its way to a worker. */
  olderThanMs: number;
  /** The node's worker pool id (null before its pool exists: nothing can be locked by it yet). */
  workerPoolId(): string | null;
  /** The jobs the node's workers run now, and those its local queue holds. */
  heldJobIds(): string[];
  logger: Logger;
}): LostLockWatch {
  const { olderThanMs, logger } = options;
  let suspectedAt: number | null = null;
  let failoverAt: number | null = null;

  return {
    suspect() {
      // The latest failure counts: a lock it lost is only old enough olderThanMs after it.
      suspectedAt = Date.now();
    },
    failover() {
      failoverAt = Date.now();
      suspectedAt ??= failoverAt;
    },
    due() {
      if (suspectedAt === null) return false;
      // After a failover no get_job can still be on its way from the old primary: a moment is enough.
      return Date.now() - suspectedAt >= olderThanMs || (failoverAt !== null && Date.now() - failoverAt >= FAILOVER_SETTLE_MS);
    },
    async check(db) {
      const since = suspectedAt;
      const poolId = options.workerPoolId();
      const found = poolId ? await releaseLostJobs(db, poolId, options.heldJobIds(), olderThanMs) : { released: [], suspects: 0 };
      logger.debug({ workerPoolId: poolId, released: found.released.length, suspects: found.suspects }, "checked for job locks lost with a connection");
      if (found.released.length > 0) {
        logger.warn(
          { jobsReleased: found.released, workerPoolId: poolId },
          `released ${found.released.length} job(s) this node locked but never ran (a database connection failed, so graphile-worker never got them); they run again with the attempt given back`,
        );
        // Idle workers (here and on other nodes) poll rarely: tell them the jobs are there.
        await announceJobs(db, found.released.length);
      }
      // A failure during the check is a new suspicion; it stays.
      if (found.suspects === 0 && suspectedAt === since) {
        suspectedAt = null;
        failoverAt = null;
      }
    },
  };
}
