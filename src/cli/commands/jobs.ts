import { cliActor } from "../../engine/audit/actor.ts";
import { SchedulerError } from "../../engine/errors.ts";
import { defaultRuntime } from "../../engine/jobs/runtime.ts";
import { waitForRun } from "../../engine/history/wait.ts";
import { describeRun, pauseJob, queueManualRun, resolveJob, resumeJob, type NamedJob as EngineNamedJob } from "../../engine/runner/manual.ts";
import { parsePayloadOption } from "../../engine/runner/run-request.ts";
import { loadTasks, type LoadedTasks } from "../../engine/runner/tasks.ts";
import { taskDirectoryFor } from "../../engine/runner/prepare.ts";
import { packsFor } from "../../scheduler.ts";
import type { CliContext, Command } from "../command.ts";
import { toJson } from "../table.ts";

/** The task files this CLI sees (SCHEDULER_TASKS_DIR): for payload checks before queueing. */
async function localTasks(ctx: CliContext): Promise<LoadedTasks> {
  const directory = taskDirectoryFor({}, ctx.config, packsFor({ platform: ctx.config.SCHEDULER_PLATFORM }));
  return loadTasks(directory, [], defaultRuntime());
}

function needName(name: string | undefined, command: string): string {
  if (!name) throw new SchedulerError("usage", `${command} needs a job name`, { hint: `systemprompt-scheduler ${command} JOB (see \`status\` for names)`, exitCode: 2 });
  return name;
}

interface NamedJob extends EngineNamedJob {
  /** The task files this CLI sees (for payload checks). */
  tasks: LoadedTasks;
}

/**
 * A job name is a crontab entry's identifier (as the nodes published it), a task of the
 * local task files, or a task a live node can run (a library user's job).
 */
async function resolveJobName(ctx: CliContext, raw: string | undefined, command: string): Promise<NamedJob> {
  const name = needName(raw, command);
  const tasks = await localTasks(ctx);
  return { ...(await resolveJob(await ctx.pool(), name, tasks, ctx.config.SCHEDULER_NODE_DEAD_AFTER_MS)), tasks };
}

export const runCommand: Command = {
  name: "run",
  summary: "queue a run of a job now (optionally wait for its outcome)",
  usage: `systemprompt-scheduler run JOB [--payload JSON] [--wait] [--timeout SECONDS] [--json]

JOB is a crontab entry's identifier or a task. An entry's run uses that entry's payload,
queue, job key and attempts, and is recorded under the entry's identifier; a task's run
gets the task's queue, one waiting run at most and 3 attempts.

--payload  JSON fields merged over the entry's payload (a task has none), e.g.
           '{"enforce": false}' for a dry run
--wait     wait for the run to finish; the exit code is its outcome (0 success, 1 failed, 3 timeout)
--timeout  seconds to wait with --wait (default 600)
--json     print {job_id, job_name, task} (and with --wait the run's outcome) as JSON

The run is recorded in the audit trail (\`audit JOB\`) as asked for by OS user@host.`,
  options: { payload: { type: "string", short: "p" }, wait: { type: "boolean", short: "w" }, timeout: { type: "string" }, json: { type: "boolean" } },
  maxPositionals: 1,
  async run(ctx, args) {
    const overrides = parsePayloadOption(args.values.payload as string | undefined);
    const timeoutSeconds = Number(args.values.timeout ?? 600);
    if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new SchedulerError("usage", `--timeout must be a positive number of seconds, got '${args.values.timeout}'`, { exitCode: 2 });
    const job = await resolveJobName(ctx, args.positionals[0], "run");
    const pool = await ctx.pool();
    const { jobId: queuedId, lastRunId, request } = await queueManualRun(pool, job, overrides, job.tasks, { actor: cliActor(), needLiveNode: Boolean(args.values.wait) });
    const nodes = job.nodes;
    const jobId = Number(queuedId);
    const queued = { job_id: jobId, job_name: request.jobName, task: request.task };
    if (!args.values.wait) {
      if (args.values.json) ctx.print(toJson(queued));
      else ctx.print(`queued ${describeRun(request)} as job ${jobId}${nodes.live === 0 ? " (no node is running: it runs when one starts)" : ""}`);
      return 0;
    }
    const { id: _runId, ...run } = await waitForRun(pool, String(jobId), lastRunId, timeoutSeconds * 1000);
    if (args.values.json) ctx.print(toJson({ ...queued, ...run, items_processed: Number(run.items_processed), items_failed: Number(run.items_failed) }));
    else ctx.print(`${describeRun(request)}: ${run.status} in ${run.duration_ms ?? "?"} ms — ${run.error ?? run.message ?? ""} (items ${run.items_processed}, failed ${run.items_failed})`);
    return run.status === "success" ? 0 : 1;
  },
};

export const pauseCommand: Command = {
  name: "pause",
  summary: "pause a job on every node (its runs are skipped until resumed)",
  usage: `systemprompt-scheduler pause JOB [--reason TEXT]

JOB is a task (pauses every entry of it) or a crontab entry's identifier. Who paused it,
when and why show in \`status\` and the scheduled_jobs view, and in the audit trail (\`audit JOB\`).`,
  options: { reason: { type: "string" } },
  maxPositionals: 1,
  async run(ctx, args) {
    const { name } = await resolveJobName(ctx, args.positionals[0], "pause");
    const paused = await pauseJob(await ctx.pool(), name, (args.values.reason as string | undefined) ?? null, cliActor());
    ctx.print(paused ? `paused ${name}` : `${name} was already paused`);
    return 0;
  },
};

export const resumeCommand: Command = {
  name: "resume",
  summary: "resume a paused job",
  usage: "systemprompt-scheduler resume JOB   (recorded in the audit trail: `audit JOB`)",
  maxPositionals: 1,
  async run(ctx, args) {
    const { name } = await resolveJobName(ctx, args.positionals[0], "resume");
    const resumed = await resumeJob(await ctx.pool(), name, cliActor());
    ctx.print(resumed ? `resumed ${name}` : `${name} was not paused`);
    return 0;
  },
};

export { resolveJobName };
