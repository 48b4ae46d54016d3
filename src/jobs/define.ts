import type { JobHelpers, Task } from "graphile-worker";
import { z } from "zod";
import type { Queryable } from "../db/pool.ts";
import { errorMessage, PermanentJobError, SchedulerError } from "../errors.ts";
import { claimRun, finishRun, finishRunAndUnlock, releaseRunLock, startRun, type Claim, type RunStart } from "../history/runs.ts";
import { defaultRuntime, type JobRuntime } from "./runtime.ts";
import type { JobResult } from "../history/types.ts";
import type { JobContext } from "./types.ts";

// The one wrapper every job runs through: payload validation, pause check, one
// run at a time per task across all nodes, timeout that cancels the job's SQL,
// a history row, logs and events. Job logic stays plain: SQL in, counts out.

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
      const task: Task = (payload, helpers) => runJob(job, payload, helpers, runtime);
      return Object.assign(task, { [DEFINITION]: job });
    },
  };
  job.task = Object.assign((payload: unknown, helpers: JobHelpers) => runJob(job, payload, helpers, defaultRuntime()), { [DEFINITION]: job });
  return job;
}

/** The job definition behind a task function, if it was made by defineJob. */
export function definitionOf(task: unknown): DefinedJob | undefined {
  return (task as { [DEFINITION]?: DefinedJob } | null)?.[DEFINITION];
}

/** Formats zod issues as "field: problem" for a person. */
export function describePayloadErrors(jobName: string, error: z.ZodError): string {
  const problems = error.issues.map((issue) => {
    const field = issue.path.length > 0 ? issue.path.join(".") : "(payload)";
    if (issue.code === "unrecognized_keys") {
      const prefix = issue.path.length > 0 ? `${issue.path.join(".")}.` : "";
      return `unknown field(s) ${issue.keys.map((key) => `'${prefix}${key}'`).join(", ")}`;
    }
    return `field '${field}': ${issue.message}`;
  });
  return `invalid payload for job '${jobName}': ${problems.join("; ")}`;
}

interface CronMeta {
  ts?: string;
}

/** Splits the reserved keys graphile-worker's cron and our crontab loader add. */
function splitPayload(raw: unknown): { fields: unknown; scheduledFor: Date | null; schedule: string | null } {
  if (raw === null || raw === undefined) return { fields: {}, scheduledFor: null, schedule: null };
  if (typeof raw !== "object" || Array.isArray(raw)) return { fields: raw, scheduledFor: null, schedule: null };
  const { _cron, _schedule, ...fields } = raw as { _cron?: CronMeta; _schedule?: unknown } & Record<string, unknown>;
  const scheduledFor = _cron?.ts ? new Date(_cron.ts) : null;
  return { fields, scheduledFor, schedule: typeof _schedule === "string" ? _schedule : null };
}

const LOCK_POLL_MS = 500;

async function runJob(job: DefinedJob, rawPayload: unknown, helpers: JobHelpers, runtime: JobRuntime): Promise<void> {
  const { fields, scheduledFor, schedule } = splitPayload(rawPayload);
  const jobName = schedule ?? job.name;
  const logger = runtime.logger.child({ job: jobName, task: job.name, jobId: helpers.job.id, attempt: helpers.job.attempts });
  const base = { jobName, task: job.name, jobId: helpers.job.id, nodeId: runtime.nodeId };
  const runStart = { ...base, attempt: helpers.job.attempts, scheduledFor };

  const parsed = job.schema.safeParse(fields);
  if (!parsed.success) {
    const message = describePayloadErrors(jobName, parsed.error);
    const runId = await startRun(helpers, { ...runStart, dryRun: false, payload: fields });
    await finishRun(helpers, runId, { status: "failed", error: message });
    // Retrying cannot fix a payload: make this attempt the last one.
    await helpers.query("update graphile_worker._private_jobs set max_attempts = attempts where id = $1", [helpers.job.id]);
    logger.error({ error: message }, "job failed permanently: invalid payload");
    runtime.events.emit("job:failed", { ...base, runId, error: message, permanent: true });
    throw new PermanentJobError(message);
  }
  const payload = parsed.data as Record<string, unknown> & { enforce: boolean };
  const lockKey = job.exclusive ? `systemprompt-scheduler:job:${job.name}` : null;

  await helpers.withPgClient(async (client) => {
    const claim = await claimRunLock(client, lockKey, { ...runStart, dryRun: !payload.enforce, payload }, job, helpers.abortSignal);
    if (claim.pausedAs !== null) {
      if (claim.locked) await releaseRunLock(client, lockKey);
      logger.info({ pausedAs: claim.pausedAs }, "job is paused; run skipped");
      runtime.events.emit("job:skipped", { ...base, reason: "paused" });
      return;
    }
    const runId = claim.runId!;
    const controller = new AbortController();
    const cancel = (reason: SchedulerError) => {
      if (controller.signal.aborted) return;
      controller.abort(reason);
      helpers.query("select pg_cancel_backend($1)", [(client as unknown as { processID: number }).processID]).catch(() => {});
    };
    const timer = setTimeout(() => cancel(new SchedulerError("job_timeout", `job '${jobName}' exceeded its timeout of ${job.timeoutMs} ms and was cancelled`)), job.timeoutMs);
    const onShutdown = () => cancel(new SchedulerError("job_cancelled", `job '${jobName}' was cancelled: its node is shutting down and the grace period ended; it will be retried`));
    runtime.cancelAll?.addEventListener("abort", onShutdown);
    if (runtime.cancelAll?.aborted) onShutdown();
    const db: Queryable = {
      async query(text, values) {
        if (controller.signal.aborted) throw controller.signal.reason;
        try {
          return await client.query(text, values);
        } catch (error) {
          if (controller.signal.aborted) throw controller.signal.reason;
          throw error;
        }
      },
    };
    const started = Date.now();
    runtime.events.emit("job:start", { ...base, runId });
    try {
      const result = await job.run({
        payload,
        enforce: payload.enforce,
        db,
        logger,
        signal: controller.signal,
        jobName,
        task: job.name,
        jobId: helpers.job.id,
        attempt: helpers.job.attempts,
        scheduledFor,
        nodeId: runtime.nodeId,
      });
      clearTimeout(timer);
      try {
        await finishRunAndUnlock(client, runId, lockKey, result);
      } catch (error) {
        // The work is done; only this connection broke. Record the success on the pool (the
        // lock went with the session), so the run is not re-run as a failure.
        logger.warn({ error: errorMessage(error) }, "recording the run's success on its own connection failed; retrying on the pool");
        await finishRun(helpers, runId, { status: "success", result });
      }
      const durationMs = Date.now() - started;
      logger.info({ itemsProcessed: result.itemsProcessed, itemsFailed: result.itemsFailed, durationMs, dryRun: !payload.enforce, details: result.details }, result.message);
      runtime.events.emit("job:success", { ...base, runId, result, durationMs });
    } catch (error) {
      clearTimeout(timer);
      const message = errorMessage(error);
      // On the pool: this run's own connection may be the thing that broke.
      await finishRun(helpers, runId, { status: "failed", error: message }).catch((e: unknown) => logger.error({ err: e }, "could not record the failed run"));
      await releaseRunLock(client, lockKey).catch(() => {});
      logger.error({ error: message, durationMs: Date.now() - started }, "job failed");
      runtime.events.emit("job:failed", { ...base, runId, error: message, permanent: false });
      throw error;
    } finally {
      runtime.cancelAll?.removeEventListener("abort", onShutdown);
    }
  });
}

/**
 * One run of a task at a time, on any node: cron entries and our CLI also put a
 * task's runs in one graphile-worker queue, but a bare `add_job()` from SQL does
 * not, so the session lock is what guarantees it. Waits (bounded by the job's
 * timeout) rather than failing, so the waiting run happens right after.
 */
async function claimRunLock(client: Queryable, lockKey: string | null, run: RunStart, job: DefinedJob, shutdown: AbortSignal): Promise<Claim> {
  const deadline = Date.now() + job.timeoutMs;
  for (;;) {
    const claim = await claimRun(client, lockKey, run);
    if (claim.locked || claim.pausedAs !== null) return claim;
    if (shutdown.aborted || Date.now() > deadline) {
      throw new SchedulerError("job_busy", `another run of '${job.name}' is still in progress; this run will be retried`);
    }
    await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
  }
}
