import type { Task } from "graphile-worker";
import type { z } from "zod";
import type { Queryable } from "../db/pool.ts";
import type { JobResult } from "../history/types.ts";
import type { Logger } from "../log.ts";
import type { JobRuntime } from "./runtime.ts";

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

/** A job made with defineJob (define.ts), run by the wrapper in execute.ts. */
export interface DefinedJob {
  name: string;
  description: string;
  timeoutMs: number;
  exclusive: boolean;
  schema: z.ZodType;
  run(ctx: JobContext<Record<string, unknown> & { enforce: boolean }>): Promise<JobResult>;
  /** The graphile-worker task, using the default runtime (plain `npx graphile-worker`). */
  task: Task;
  /** The same task bound to a runtime of our runner. */
  bind(runtime: JobRuntime): Task;
}
