import type { JobHelpers, Task } from "graphile-worker";
import { z } from "zod";
import { SchedulerError } from "../errors.ts";
import { runDefinedJob } from "./execute.ts";
import { defaultRuntime, type JobRuntime } from "./runtime.ts";
import type { JobResult } from "../history/types.ts";
import type { DefinedJob, JobContext } from "./types.ts";

export type { DefinedJob } from "./types.ts";

// A job is a definition: its name, payload shape, timeout and whether its runs may
// overlap, and its logic (SQL in, counts out). execute.ts runs it through the one
// wrapper every job shares; plain.ts gives plain graphile-worker tasks a lighter one.

type Shape = z.ZodRawShape;
export type PayloadOf<S extends Shape> = z.infer<z.ZodObject<S>> & { enforce: boolean };

export interface JobDefinition<S extends Shape> {
  /** The task identifier: the file name in tasks/ and the crontab's task. */
  name: string;
  description: string;
  /** The job's own payload fields; `enforce` (dry run when false) is added for every job. */
  payload: S;
  /** Default 10 minutes. The run's SQL is cancelled when it is exceeded. */
  timeoutMs?: number;
  /**
   * Default true: runs of this job never overlap, on any node. Only a job whose runs
   * are independent of each other (per-item work) should set false.
   */
  exclusive?: boolean;
  run(ctx: JobContext<PayloadOf<S>>): Promise<JobResult>;
}

const DEFINITION = Symbol.for("systemprompt-scheduler.job-definition");

export function defineJob<S extends Shape>(definition: JobDefinition<S>): DefinedJob {
  if (!/^[_a-zA-Z][_a-zA-Z0-9:/-]*$/.test(definition.name)) {
    throw new SchedulerError("bad_job_name", `job name '${definition.name}' is not a valid task identifier`, {
      hint: "use letters, digits and underscores, starting with a letter or underscore",
    });
  }
  const schema = z.strictObject({ ...definition.payload, enforce: z.boolean().default(true) });
  const job: DefinedJob = {
    name: definition.name,
    description: definition.description,
    timeoutMs: definition.timeoutMs ?? 10 * 60_000,
    exclusive: definition.exclusive ?? true,
    schema,
    run: definition.run as DefinedJob["run"],
    task: undefined as unknown as Task,
    bind(runtime) {
      const task: Task = (payload, helpers) => runDefinedJob(job, payload, helpers, runtime);
      return Object.assign(task, { [DEFINITION]: job });
    },
  };
  job.task = Object.assign((payload: unknown, helpers: JobHelpers) => runDefinedJob(job, payload, helpers, defaultRuntime()), { [DEFINITION]: job });
  return job;
}

/** The job definition behind a task function, if it was made by defineJob. */
export function definitionOf(task: unknown): DefinedJob | undefined {
  return (task as { [DEFINITION]?: DefinedJob } | null)?.[DEFINITION];
}

export { describePayloadErrors } from "./payload.ts";
