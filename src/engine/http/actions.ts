import type { Queryable } from "../db/pool.ts";
import { SchedulerError } from "../errors.ts";
import { dashboardActor } from "../audit/actor.ts";
import { describeRun, pauseJob, queueManualRun, resolveJob, resumeJob, type TaskChecker } from "../runner/manual.ts";
import { HttpProblem } from "./types.ts";

// The dashboard's actions, POST /api/actions/<name> with a JSON body, once guard.ts let the
// request through. Each is what the CLI's command of the same name does (runner/manual.ts),
// on the node's own pool: nothing here runs SQL the node's runtime role could not, or starts
// a process.

export interface ActionContext {
  db: Queryable;
  /** The node's tasks: names and payload checks, and which can do a dry run. */
  tasks: TaskChecker & { canDryRun(task: string): boolean };
  deadAfterMs: number;
  nodeId: string;
}

export type ActionHandler = (body: Record<string, unknown>, from: string) => Promise<Record<string, unknown>>;

const STATUS_OF: Record<string, number> = { unknown_job: 404, invalid_payload: 400, job_paused: 409, task_not_loaded: 409, no_live_node: 409 };

function text(body: Record<string, unknown>, key: string, max: number, required: boolean): string | null {
  const value = body[key];
  if (value === undefined || value === null || value === "") {
    if (required) throw new HttpProblem(400, `the body needs "${key}"`, `e.g. {"${key}": "database_cleanup"}`);
    return null;
  }
  if (typeof value !== "string" || value.length > max) throw new HttpProblem(400, `"${key}" must be text of at most ${max} characters`);
  return value;
}

/** A SchedulerError (unknown job, paused, bad payload) as the HTTP answer it deserves. */
async function answering<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof SchedulerError && STATUS_OF[error.code]) throw new HttpProblem(STATUS_OF[error.code]!, error.message, error.hint);
    throw error;
  }
}

export function actionRoutes(context: ActionContext): Record<string, ActionHandler> {
  const { db, tasks, deadAfterMs } = context;
  const resolve = (body: Record<string, unknown>) => resolveJob(db, text(body, "job", 200, true)!, tasks, deadAfterMs);
  const actor = (from: string) => dashboardActor(context.nodeId, from);
  const runNow = (dryRun: boolean): ActionHandler => (body, from) =>
    answering(async () => {
      const job = await resolve(body);
      if (dryRun && !tasks.canDryRun(job.task)) {
        throw new HttpProblem(400, `'${job.name}' has no dry run: its task '${job.task}' takes no "enforce" field`, "dry runs are for jobs made with defineJob");
      }
      const { jobId, request } = await queueManualRun(db, job, dryRun ? { enforce: false } : {}, tasks, { actor: actor(from) });
      return { job_id: jobId, job_name: request.jobName, task: request.task, dry_run: dryRun, message: `queued ${dryRun ? "a dry run of " : ""}${describeRun(request)} as job ${jobId}` };
    });
  return {
    run: runNow(false),
    "dry-run": runNow(true),
    pause: (body, from) =>
      answering(async () => {
        const job = await resolve(body);
        const reason = text(body, "reason", 500, false);
        const paused = await pauseJob(db, job.name, reason, actor(from));
        return { job_name: job.name, paused, message: paused ? `paused ${job.name}` : `${job.name} was already paused` };
      }),
    resume: (body, from) =>
      answering(async () => {
        const job = await resolve(body);
        const resumed = await resumeJob(db, job.name, actor(from));
        return { job_name: job.name, resumed, message: resumed ? `resumed ${job.name}` : `${job.name} was not paused` };
      }),
  };
}
