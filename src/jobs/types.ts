import type { Queryable } from "../db/pool.ts";
import type { Logger } from "../log.ts";

export interface JobContext<P> {
  /** The validated payload (with `enforce`). */
  payload: P;
  /** False for a dry run (`{"enforce": false}`): report what would change, change nothing. */
  enforce: boolean;
  /** This run's own connection. Every query is cancelled when the run times out. */
  db: Queryable;
  logger: Logger;
  /** Aborted when the run exceeds its timeout. */
  signal: AbortSignal;
  jobName: string;
  task: string;
  jobId: string | null;
  attempt: number;
  scheduledFor: Date | null;
  nodeId: string;
}
