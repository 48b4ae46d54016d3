import path from "node:path";
import { projectRoot } from "../../db/sql-file.ts";
import { SchedulerError } from "../../errors.ts";
import { describePayloadErrors, type DefinedJob } from "../../jobs/define.ts";
import { defaultRuntime } from "../../jobs/runtime.ts";
import { enqueueJob } from "../../runner/enqueue.ts";
import { loadTasks } from "../../runner/tasks.ts";
import { waitForRun } from "../../history/wait.ts";
import type { CliContext, Command } from "../command.ts";
import { toJson } from "../table.ts";

async function knownJobs(ctx: CliContext): Promise<{ names: Set<string>; jobs: Map<string, DefinedJob> }> {
  const directory = path.resolve(ctx.config.SCHEDULER_TASKS_DIR ?? path.join(projectRoot, "tasks"));
  const { taskList, jobs } = await loadTasks(directory, [], defaultRuntime());
  return { names: new Set(Object.keys(taskList)), jobs };
}

/** A job name is a task, or a crontab entry's identifier as published by a node. */
async function resolveJobName(ctx: CliContext, name: string | undefined, command: string): Promise<{ name: string; task: string }> {
  if (!name) throw new SchedulerError("usage", `${command} needs a job name`, { hint: `systemprompt-scheduler ${command} JOB (see \`status\` for names)`, exitCode: 2 });
  const { names } = await knownJobs(ctx);
  if (names.has(name)) return { name, task: name };
  const { rows } = await (await ctx.pool()).query<{ task: string }>("select task from scheduler.schedules where job_name = $1", [name]);
  if (rows[0]) return { name, task: rows[0].task };
  throw new SchedulerError("unknown_job", `no job named '${name}'`, { hint: `known jobs: ${[...names].sort().join(", ")}`, exitCode: 2 });
}

export const runCommand: Command = {
  name: "run",
  summary: "queue a run of a job now (optionally wait for its outcome)",
  usage: `systemprompt-scheduler run JOB [--payload JSON] [--wait] [--timeout SECONDS] [--json]

--payload  the job's payload as JSON, e.g. '{"enforce": false}' for a dry run
--wait     wait for the run to finish; the exit code is its outcome (0 success, 1 failed, 3 timeout)`,
  options: { payload: { type: "string", short: "p" }, wait: { type: "boolean", short: "w" }, timeout: { type: "string" }, json: { type: "boolean" } },
  async run(ctx, args) {
    const { name, task } = await resolveJobName(ctx, args.positionals[0], "run");
    let payload: Record<string, unknown> = {};
    if (args.values.payload !== undefined) {
      try {
        payload = JSON.parse(String(args.values.payload)) as Record<string, unknown>;
      } catch (error) {
        throw new SchedulerError("bad_payload_json", `--payload is not valid JSON: ${(error as Error).message}`, { hint: `quote it for the shell, e.g. --payload '{"enforce": false}'`, exitCode: 2 });
      }
      if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
        throw new SchedulerError("bad_payload_json", "--payload must be a JSON object", { exitCode: 2 });
      }
    }
    const { jobs } = await knownJobs(ctx);
    const job = jobs.get(task);
    if (job) {
      const parsed = job.schema.safeParse(payload);
      if (!parsed.success) throw new SchedulerError("invalid_payload", describePayloadErrors(task, parsed.error), { exitCode: 2 });
    }
    const pool = await ctx.pool();
    const paused = await pool.query("select job_name from scheduler.paused_jobs where job_name = any($1::text[])", [[name, task]]);
    if (paused.rows.length > 0) {
      throw new SchedulerError("job_paused", `job '${paused.rows[0].job_name}' is paused; a run would be skipped`, { hint: `systemprompt-scheduler resume ${paused.rows[0].job_name}`, exitCode: 2 });
    }
    const timeoutSeconds = Number(args.values.timeout ?? 600);
    if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new SchedulerError("usage", `--timeout must be a positive number of seconds, got '${args.values.timeout}'`, { exitCode: 2 });
    const jobId = await enqueueJob(pool, task, payload);
    if (!args.values.wait) {
      ctx.print(args.values.json ? toJson({ jobId }) : `queued ${task} as job ${jobId}`);
      return 0;
    }
    const run = await waitForRun(pool, jobId, timeoutSeconds * 1000);
    if (args.values.json) ctx.print(toJson({ jobId, ...run }));
    else ctx.print(`${task}: ${run.status} in ${run.duration_ms ?? "?"} ms — ${run.error ?? run.message ?? ""} (items ${run.items_processed}, failed ${run.items_failed})`);
    return run.status === "success" ? 0 : 1;
  },
};

export const pauseCommand: Command = {
  name: "pause",
  summary: "pause a job on every node (its runs are skipped until resumed)",
  usage: "systemprompt-scheduler pause JOB [--reason TEXT]\n\nJOB is a task (pauses every entry of it) or a crontab entry's identifier.",
  options: { reason: { type: "string" } },
  async run(ctx, args) {
    const { name } = await resolveJobName(ctx, args.positionals[0], "pause");
    const { rows } = await (await ctx.pool()).query("select scheduler.pause_job($1, $2) as paused", [name, args.values.reason ?? null]);
    ctx.print(rows[0]?.paused ? `paused ${name}` : `${name} was already paused`);
    return 0;
  },
};

export const resumeCommand: Command = {
  name: "resume",
  summary: "resume a paused job",
  usage: "systemprompt-scheduler resume JOB",
  async run(ctx, args) {
    const { name } = await resolveJobName(ctx, args.positionals[0], "resume");
    const { rows } = await (await ctx.pool()).query("select scheduler.resume_job($1) as resumed", [name]);
    ctx.print(rows[0]?.resumed ? `resumed ${name}` : `${name} was not paused`);
    return 0;
  },
};
